"""Running Django tasks in a Werk worker: the project's settings, one job per task call.

:func:`django_worker` builds a :class:`~werk.client.Worker` whose jobtypes are resolved on
demand: a job's jobtype is the module path of a Django task, imported on first sight (only
:class:`django.tasks.Task` objects run). Each call gets its keyword arguments from the job,
a :class:`~django.tasks.TaskContext` when the task takes one, sends Django's
``task_started`` and ``task_finished`` signals, and returns the JSON-normalised value that
the worker sends with its ACK. Database connections are closed before and after each job,
as Django does around a request (``close_old_connections``: ``CONN_MAX_AGE`` and broken
connections are honoured). A failure is reported with the exception's dotted path as its
errtype, which Django's ``TaskError.exception_class_path`` needs.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django.db import close_old_connections
from django.tasks import TaskContext, TaskResult, TaskResultStatus, task_backends
from django.tasks.signals import task_finished, task_started
from django.utils import timezone
from django.utils.json import normalize_json

from werk.client import Middleware, Worker, current_job
from werk.client.registration import Registration
from werk.contrib.django.jobs import resolve_task, task_kwargs, when


class CloseConnections(Middleware):
    """Closes the database connections Django considers old around every job."""

    def before_job(self, job: dict[str, Any]) -> None:
        """Before the task: drop connections past ``CONN_MAX_AGE`` or broken."""
        close_old_connections()

    def after_job(self, job: dict[str, Any], exc: BaseException | None) -> None:
        """After the task, as after a request."""
        close_old_connections()


class TaskRegistry(dict[str, Registration]):
    """The worker's jobtype registry, filled on demand with the Django tasks jobs name."""

    def __init__(self, wid: str) -> None:
        super().__init__()
        self.wid = wid

    def known(self) -> str:
        """What an unknown jobtype's message says this worker runs."""
        return "Django tasks only (a django.tasks task's module path, e.g. shop.tasks.add)"

    def get(self, jobtype: str, default: Any = None) -> Any:
        """Return the registration of ``jobtype``, resolving a Django task path once;
        ``default`` when it names no task (the job then fails as an unknown jobtype)."""
        found = super().get(jobtype)
        if found is None:
            if resolve_task(jobtype) is None:
                return default
            found = Registration.of(jobtype, functools.partial(run_task, self.wid))
            self[jobtype] = found
        return found


def run_task(wid: str, *args: Any) -> Any:
    """Run the Django task of the current job with its arguments; return its value.

    Raises:
        Exception: whatever the task raised, with ``errtype`` set to its dotted path.
    """
    job = current_job() or {}
    task = resolve_task(str(job.get("jobtype", "")))
    if task is None:
        raise LookupError(f"no Django task at {job.get('jobtype')!r}")
    kwargs = task_kwargs(job)
    now = timezone.now()
    result: TaskResult[Any, Any] = TaskResult(
        task=task,
        id=str(job.get("jid", "")),
        status=TaskResultStatus.RUNNING,
        enqueued_at=when(job.get("enqueued_at")),
        started_at=now,
        finished_at=None,
        last_attempted_at=now,
        args=list(args),
        kwargs=kwargs,
        backend=task.backend,
        errors=[],
        worker_ids=[wid],
    )
    sender = type(task_backends[task.backend])
    task_started.send(sender=sender, task_result=result)
    try:
        if task.takes_context:
            value = task.call(TaskContext(task_result=result), *args, **kwargs)
        else:
            value = task.call(*args, **kwargs)
        value = normalize_json(value)
    except Exception as exc:
        _finish(result, TaskResultStatus.FAILED, sender)
        kind = type(exc)
        try:
            exc.errtype = f"{kind.__module__}.{kind.__qualname__}"  # type: ignore[attr-defined]
        except AttributeError:  # an exception without a __dict__ keeps its class name
            pass
        raise
    _finish(result, TaskResultStatus.SUCCESSFUL, sender)
    return value


def _finish(result: TaskResult[Any, Any], status: TaskResultStatus, sender: type) -> None:
    object.__setattr__(result, "status", status)
    object.__setattr__(result, "finished_at", timezone.now())
    task_finished.send(sender=sender, task_result=result)


def django_worker(
    *,
    backend: str = "default",
    queues: Sequence[str | tuple[str, int]] = (),
    concurrency: int = 10,
    url: str | None = None,
) -> Worker:
    """Build a worker for the Django tasks of a ``TASKS`` backend.

    Args:
        backend: the ``TASKS`` alias; its ``OPTIONS["URL"]`` and ``QUEUES`` are the
            defaults of ``url`` and ``queues``.
        queues: the queues to fetch from, in order (``"name,weight"`` or
            ``(name, weight)`` for weighted order, as :class:`~werk.client.Worker` takes).
        concurrency: how many tasks run at once (threads; one connection each).
        url: the Werk server.
    """
    configured = task_backends[backend]
    names = list(queues) or sorted(configured.queues) or ["default"]
    worker = Worker(
        url or configured.options.get("URL"),
        queues=names,
        concurrency=concurrency,
        labels=("python", "django"),
        middleware=[CloseConnections()],
    )
    worker.registry = TaskRegistry(worker.wid)
    return worker
