"""The ``django.tasks`` backend: enqueue pushes a Werk job, get_result reads RESULT.

Settings (``TASKS[alias]``): ``QUEUES`` (the queue names tasks may use; the server's rule,
:data:`werk.job.QUEUE_NAME`, applies too), and ``OPTIONS``: ``URL`` (the Werk server, default
``WERK_URL``/``FAKTORY_URL`` or ``tcp://localhost:7419``), ``RESULT_TTL`` (seconds a
finished task's result is kept, default 86400, at most 30 days), ``RETRY`` (how often a
failing task is retried, default 0: as in Django, a task that raised is FAILED; so is one
whose worker died, Faktory's rule for an expired reservation) and ``RESERVE_FOR`` (seconds
a worker has to finish a task before the server counts it as failed, default the server's
1800). Any other key is refused (:mod:`.options`).
"""

from __future__ import annotations

import threading
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.core.checks import CheckMessage
from django.core.checks import Error as CheckError
from django.core.exceptions import ImproperlyConfigured
from django.tasks import Task, TaskResult, TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.exceptions import InvalidTask
from django.tasks.signals import task_enqueued
from django.utils import timezone

from werk.client import Client
from werk.contrib.django.jobs import job_payload, task_result
from werk.contrib.django.options import read_options
from werk.job import QUEUE_NAME, QUEUE_RULE, new_jid

P = ParamSpec("P")
R = TypeVar("R")


class WerkBackend(BaseTaskBackend):
    """Runs Django tasks as Werk jobs; results come from Werk's job results."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.read = read_options(self.options)
        self.url = self.read.url
        self.result_ttl = self.read.result_ttl
        self.retry = self.read.retry
        self.reserve_for = self.read.reserve_for
        self._client: Client | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Client:
        """The Werk client of this backend (made on first use; thread-safe)."""
        with self._lock:
            if self._client is None:
                self._client = Client(self.url)
            return self._client

    def validate_task(self, task: Task[Any, Any]) -> None:
        """Django's checks, plus Werk's rule for queue names.

        Raises:
            InvalidTask: the task cannot run on this backend.
        """
        super().validate_task(task)
        if not QUEUE_NAME.match(task.queue_name):
            raise InvalidTask(f"Queue name {task.queue_name!r} is not valid for Werk: {QUEUE_RULE}")

    def enqueue(
        self, task: Task[P, R], args: list[Any], kwargs: dict[str, Any]
    ) -> TaskResult[P, R]:
        """Push the task as a Werk job; return its READY result (its id is the jid).

        Raises:
            ImproperlyConfigured: the backend's OPTIONS are wrong (what ``manage.py
                check`` reports; a WSGI server runs no checks).
            InvalidTask: the task cannot run on this backend.
            TypeError: an argument cannot be encoded as JSON.
            CommandError: the Werk server refused the job.
        """
        if self.read.problems:
            problem = self.read.problems[0]
            raise ImproperlyConfigured(f"TASKS[{self.alias!r}]: {problem.message} ({problem.id})")
        self.validate_task(task)
        result = TaskResult(
            task=task,
            id=new_jid(),
            status=TaskResultStatus.READY,
            enqueued_at=timezone.now(),
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=list(args),
            kwargs=dict(kwargs),
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        payload = job_payload(
            task,
            result.id,
            result.args,  # normalised to JSON values by TaskResult
            result.kwargs,
            backend=self.alias,
            result_ttl=self.result_ttl,
            retry=self.retry,
            reserve_for=self.reserve_for,
        )
        self.client.push(payload)
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str, *, timeout: float = 0.0) -> TaskResult[Any, Any]:
        """Return the task's result now, or, with ``timeout`` (a Werk extension of the
        API), once it finished, waiting on the Werk server up to that many seconds.

        Raises:
            TaskResultDoesNotExist: Werk knows no such task (never enqueued here, or its
                result expired after ``RESULT_TTL``).
        """
        return task_result(self.client.job_state(result_id, timeout), self.alias)

    async def aget_result(self, result_id: str, *, timeout: float = 0.0) -> TaskResult[Any, Any]:
        """The async form of :meth:`get_result` (the wait runs in a thread)."""
        return await sync_to_async(self.get_result, thread_sensitive=False)(
            result_id, timeout=timeout
        )

    def check(self, **kwargs: Any) -> list[CheckMessage]:
        """Check the OPTIONS and QUEUES (``python manage.py check``): werk.E001 RESULT_TTL,
        werk.E002 a queue name, werk.E003 an unknown OPTIONS key, werk.E004 RETRY,
        werk.E005 RESERVE_FOR, werk.E006 URL."""
        errors: list[CheckMessage] = [
            CheckError(problem.message, obj=f"TASKS[{self.alias!r}]", id=problem.id)
            for problem in self.read.problems
        ]
        bad = sorted(name for name in self.queues if not QUEUE_NAME.match(name))
        if bad:
            errors.append(
                CheckError(
                    f"Invalid queue names {', '.join(bad)}: {QUEUE_RULE}",
                    obj=f"TASKS[{self.alias!r}]",
                    id="werk.E002",
                )
            )
        return errors
