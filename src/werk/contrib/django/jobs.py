"""How a Django task travels as a Werk job, and how a RESULT document becomes Django's
``TaskResult``.

A task enqueued with ``args`` and ``kwargs`` becomes the job::

    {"jid": <result id>, "jobtype": "<task's module path>", "args": [...args],
     "queue": <queue_name>, "priority": <1..9>, "at": <run_after>, "retry": <RETRY>,
     "reserve_for": <RESERVE_FOR>,
     "custom": {"result_ttl": <RESULT_TTL>, "django": {"kwargs": {...}, "backend": <alias>}}}

(``at`` only with ``run_after``, ``reserve_for`` only with ``RESERVE_FOR``.)

Django's priorities (-100..100, default 0, higher first) are mapped onto Werk's 1..9
(default 5, higher first) by :func:`werk_priority`, steps of 25 centred on 0.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.tasks import Task, TaskResult, TaskResultStatus
from django.tasks.base import TaskError
from django.tasks.exceptions import TaskResultDoesNotExist
from django.utils import timezone
from django.utils.module_loading import import_string

from werk.client.results import JobState
from werk.contrib.django.errors import exception_path
from werk.job import format_time, parse_time

CUSTOM_KEY = "django"
"""The key of ``custom`` holding a Django task's keyword arguments and backend alias."""
STATUS: dict[str, TaskResultStatus] = {
    "queued": TaskResultStatus.READY,
    "scheduled": TaskResultStatus.READY,
    "retrying": TaskResultStatus.READY,
    "working": TaskResultStatus.RUNNING,
    "succeeded": TaskResultStatus.SUCCESSFUL,
    "failed": TaskResultStatus.FAILED,
    "dead": TaskResultStatus.FAILED,
}
"""Werk's job states in Django's terms (a job waiting for a retry is ready again)."""


def werk_priority(priority: int) -> int:
    """Map a Django priority (-100..100) onto Werk's 1..9: 0 → 5, and one step per 25
    (-12..12 → 5, 13..37 → 6, 38..62 → 7, 63..87 → 8, 88..100 → 9; the same below 0)."""
    return min(9, max(1, 5 + math.floor(priority / 25 + 0.5)))


def job_payload(
    task: Task[Any, Any],
    jid: str,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    backend: str,
    result_ttl: float,
    retry: int,
    reserve_for: int | None = None,
) -> dict[str, Any]:
    """Return the Werk job that runs ``task`` with these (JSON-normalised) arguments."""
    payload: dict[str, Any] = {
        "jid": jid,
        "jobtype": task.module_path,
        "args": args,
        "queue": task.queue_name,
        "priority": werk_priority(task.priority),
        "retry": retry,
        "custom": {"result_ttl": result_ttl, CUSTOM_KEY: {"kwargs": kwargs, "backend": backend}},
    }
    if task.run_after is not None:
        payload["at"] = format_time(task.run_after.timestamp())
    if reserve_for is not None:
        payload["reserve_for"] = reserve_for
    return payload


def resolve_task(path: str) -> Task[Any, Any] | None:
    """Return the Django task at a module path (a job's jobtype), or ``None``."""
    try:
        found = import_string(path)
    except (ImportError, ValueError):
        return None
    return found if isinstance(found, Task) else None


def task_kwargs(job: dict[str, Any]) -> dict[str, Any]:
    """Return the keyword arguments a Django task's job carries."""
    custom = job.get("custom")
    data = custom.get(CUSTOM_KEY) if isinstance(custom, dict) else None
    kwargs = data.get("kwargs") if isinstance(data, dict) else None
    return kwargs if isinstance(kwargs, dict) else {}


def when(text: str | None) -> datetime | None:
    """Turn an RFC 3339 time from Werk into the datetime Django uses (aware with USE_TZ)."""
    if not text:
        return None
    moment = datetime.fromtimestamp(parse_time(text), UTC)
    return moment if settings.USE_TZ else timezone.make_naive(moment)


FRAME = re.compile(r"(?P<file>.+):(?P<line>\d+):in `(?P<func>.*)'")
"""A frame as Faktory's workers report it (``file:line:in `func'``, innermost first)."""


def task_error(error: dict[str, Any]) -> TaskError:
    """Turn a Werk error (``errtype``, ``message``, ``backtrace``) into Django's TaskError;
    Werk's Django worker reports the exception's dotted path as its errtype.

    The traceback reads as Python prints one (``Traceback (most recent call last):``, the
    outermost frame first, ``File "...", line N, in func``); a backtrace line in another
    form (a worker in another language) is kept as it is.
    """
    errtype = str(error.get("errtype") or "Exception")
    frames = []
    for line in reversed([str(line) for line in error.get("backtrace") or []]):
        frame = FRAME.fullmatch(line)
        frames.append(
            f'  File "{frame["file"]}", line {frame["line"]}, in {frame["func"]}'
            if frame
            else f"  {line}"
        )
    head = ["Traceback (most recent call last):", *frames] if frames else []
    text = "\n".join([*head, f"{errtype}: {error.get('message', '')}"])
    return TaskError(exception_class_path=exception_path(errtype), traceback=text)


def task_result(state: JobState, backend: str) -> TaskResult[Any, Any]:
    """Build Django's TaskResult from a RESULT document.

    Raises:
        TaskResultDoesNotExist: Werk knows no such job, or it is not a Django task.
    """
    status = STATUS.get(state.state)
    task = resolve_task(state.jobtype or "") if status is not None else None
    if status is None or task is None:
        raise TaskResultDoesNotExist(state.jid)
    started = when(state.started_at)
    result: TaskResult[Any, Any] = TaskResult(
        task=task,
        id=state.jid,
        status=status,
        enqueued_at=when(state.enqueued_at),
        started_at=started,
        finished_at=when(state.finished_at),
        last_attempted_at=started,
        args=state.args,
        kwargs=task_kwargs({"custom": state.custom}),
        backend=backend,
        errors=[task_error(state.error)] if state.error else [],
        worker_ids=[state.wid] if state.wid else [],
    )
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", state.result)
    return result
