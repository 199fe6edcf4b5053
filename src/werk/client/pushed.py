"""What tasks push with, and what a push gives back.

Tasks push through a :class:`TaskClient`: the one given to the task, else the process's
default (:func:`default_client`, a :class:`~werk.client.Client` from the environment unless
:func:`set_default_client` set another). A push returns a :class:`Pushed`, the handle on
the job's outcome; a bulk push a :class:`BulkPushed`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from werk.client.client import Client
from werk.client.job import Job
from werk.client.results import JobState

R = TypeVar("R")


class TaskClient(Protocol):
    """What tasks push and read results with: a :class:`Client`, or a
    :class:`~werk.client.testing.InlineClient` that runs jobs as they are pushed."""

    def push(self, job: Job | Mapping[str, Any]) -> str: ...

    def push_bulk(self, jobs: Iterable[Job | Mapping[str, Any]]) -> dict[str, str]: ...

    def job_state(self, jid: str, timeout: float | None = 0.0) -> JobState: ...

    def result(self, jid: str, timeout: float | None = None) -> Any: ...

    def delete_queued(self, queue: str, *jids: str) -> int: ...

    def delete_unrun(self, queue: str, jid: str) -> bool: ...


_default: TaskClient | None = None
_default_lock = threading.Lock()


def default_client() -> TaskClient:
    """The client tasks push with unless given one: set by :func:`set_default_client`, else
    a :class:`Client` made on first use from ``WERK_URL``/``FAKTORY_URL``."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Client()
        return _default


def set_default_client(client: TaskClient | None) -> None:
    """Make ``client`` the one tasks push with (``None``: make one from the environment)."""
    global _default
    with _default_lock:
        _default = client


@dataclass(frozen=True, slots=True)
class Pushed(Generic[R]):
    """A job the server accepted: its ``jid``, ``jobtype`` and ``queue``, and a handle on
    its outcome (for a task declared with ``result_ttl``, Werk's job results)."""

    jid: str
    jobtype: str
    queue: str
    client: TaskClient | None = field(default=None, repr=False, compare=False)

    def result(self, timeout: float | None = None) -> R:
        """Wait up to ``timeout`` seconds (``None``: no limit) for the job to end, on the
        server, and return its function's return value.

        Raises:
            JobFailedError: the job failed for good (discarded or dead).
            UnknownJobError: nothing is known of the job (declared without
                ``result_ttl``, or its result expired).
            ResultTimeoutError: the job had not ended in time.
        """
        value: R = self._client().result(self.jid, timeout)
        return value

    def state(self, timeout: float | None = 0.0) -> JobState:
        """Return what the server knows of the job now (or once it ended, waiting up to
        ``timeout`` seconds): see :meth:`werk.client.Client.job_state`."""
        return self._client().job_state(self.jid, timeout)

    def delete(self) -> bool:
        """Delete the job if it has not run yet, waiting in its queue or, pushed with
        ``push_in``/``push_at``, in the scheduled set; return whether it was deleted before
        it ran. A job a worker already fetched keeps running; see
        :meth:`werk.client.Client.delete_unrun`."""
        return self._client().delete_unrun(self.queue, self.jid)

    def _client(self) -> TaskClient:
        return self.client if self.client is not None else default_client()


@dataclass(frozen=True, slots=True)
class BulkPushed:
    """What :meth:`Task.push_bulk` did: the jobs accepted, and ``{jid: error}`` refused."""

    pushed: list[Pushed[Any]]
    refused: dict[str, str]
