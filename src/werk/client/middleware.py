"""Middleware: hooks around the worker's life and around every job (dramatiq style).

Subclass :class:`Middleware` and override only the hooks you need; the base class does
nothing. Job hooks run in the thread that runs the job: the event loop for ``async def``
jobs, a pool thread for plain functions; a job's timeout does not count them
(:mod:`werk.client.timeouts`). A hook that raises fails the job, except
:meth:`Middleware.on_retries_exhausted`, which runs after the job's last FAIL (see
:mod:`werk.client.exhausted`): its errors are logged.
"""

from __future__ import annotations

from typing import Any

from werk.client.state import WorkerInfo


class Middleware:
    """No-op base class of worker middleware.

    Hooks are called in the order the middleware was given for ``before_*`` hooks and in
    reverse order for ``after_*`` hooks, so each middleware wraps the ones after it.
    """

    def on_start(self, worker: WorkerInfo) -> None:
        """Called once when the worker starts, before the first FETCH."""

    def on_stop(self, worker: WorkerInfo) -> None:
        """Called once after the worker stopped and reported its last job."""

    def before_job(self, job: dict[str, Any]) -> None:
        """Called before a job's function runs; raise to fail the job instead."""

    def after_job(self, job: dict[str, Any], exc: BaseException | None) -> None:
        """Called after a job's function returned (``exc`` is ``None``) or raised."""

    def on_retries_exhausted(self, job: dict[str, Any], exc: BaseException) -> None:
        """Called once when a job failed for the last time: after the server accepted the
        FAIL that sends it to the dead set or discards it (``retry`` 0), for jobs of every
        type, after the task's own ``on_retries_exhausted``. ``job`` is the payload as
        fetched, ``exc`` the exception of its last run. Runs on a job thread; an override
        may be ``async def`` (it then runs on the event loop). Its errors are logged.
        """
