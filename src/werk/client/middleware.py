"""Middleware: hooks around the worker's life and around every job (dramatiq style).

Subclass :class:`Middleware` and override only the hooks you need; the base class does
nothing. Job hooks run in the thread that runs the job: the event loop for ``async def``
jobs, a pool thread for plain functions. A hook that raises fails the job.
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
