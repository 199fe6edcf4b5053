"""Running one fetched job: find its function, call it with middleware, build the report.

The result of running a job is the command that reports it: ``ACK`` when the function
returned, ``FAIL`` with the exception's type, message and trimmed backtrace when it raised.
``async def`` functions run right on the event loop; plain functions run on a thread pool,
with their middleware hooks, in one hop.
"""

from __future__ import annotations

import asyncio
import inspect
import traceback
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from werk.client.client import CALLS
from werk.client.middleware import Middleware
from werk.client.proto import Call
from werk.client.threads import JobThreads

DEFAULT_BACKTRACE = 30
"""Backtrace lines reported when the job does not ask for a number (``backtrace`` 0/unset)."""
SHUTDOWN_ERRTYPE = "WorkerShutdown"
"""``errtype`` of jobs handed back to the server because the worker stopped."""

_current: ContextVar[dict[str, Any] | None] = ContextVar("werk_current_job", default=None)


def current_job() -> dict[str, Any] | None:
    """Return the payload of the job running in this thread or task, or ``None``."""
    return _current.get()


class UnknownJobTypeError(Exception):
    """A job arrived whose ``jobtype`` no function was registered for."""


@dataclass(frozen=True, slots=True)
class Registration:
    """A registered job function and whether it is a coroutine function."""

    name: str
    func: Callable[..., Any]
    is_async: bool

    @classmethod
    def of(cls, name: str, func: Callable[..., Any]) -> Registration:
        """Describe ``func`` registered under ``name``."""
        return cls(name, func, inspect.iscoroutinefunction(func))


def backtrace_lines(exc: BaseException, limit: int) -> list[str]:
    """Return the innermost ``limit`` frames of ``exc`` as ``file:line:in `func'`` lines."""
    frames = traceback.extract_tb(exc.__traceback__)
    lines = [f"{f.filename}:{f.lineno}:in `{f.name}'" for f in frames]
    return lines[-limit:][::-1] if limit > 0 else []


def fail_call(job: dict[str, Any], exc: BaseException, errtype: str | None = None) -> Call[None]:
    """Build the FAIL reporting ``exc`` for ``job``, trimmed to the job's ``backtrace``.

    The errtype is the exception's class name, unless the exception has a string
    ``errtype`` attribute (as :class:`werk.client.limits.RateLimited` does).
    """
    wanted = job.get("backtrace")
    limit = wanted if isinstance(wanted, int) and wanted > 0 else DEFAULT_BACKTRACE
    message = str(exc) or type(exc).__name__
    declared = getattr(exc, "errtype", None)  # an exception may name its own errtype
    return CALLS.fail(
        str(job.get("jid", "")),
        errtype or (declared if isinstance(declared, str) and declared else type(exc).__name__),
        message,
        backtrace_lines(exc, limit),
    )


def shutdown_call(job: dict[str, Any], reason: str) -> Call[None]:
    """Build the FAIL that hands ``job`` back to the server so that it is retried."""
    return CALLS.fail(str(job.get("jid", "")), SHUTDOWN_ERRTYPE, reason)


class Runner:
    """Runs jobs for a worker: the registry, the middleware and the thread pool.

    Args:
        registry: job functions by ``jobtype``.
        middleware: hooks around every job.
        threads: where plain (non-async) functions run (``None``: the loop's default
            executor).
    """

    def __init__(
        self,
        registry: dict[str, Registration],
        middleware: Sequence[Middleware],
        threads: JobThreads | None = None,
    ) -> None:
        self.registry = registry
        self.middleware = list(middleware)
        self.threads = threads

    async def run(self, job: dict[str, Any]) -> Call[None]:
        """Run ``job`` and return the ACK or FAIL that reports it."""
        entry = self.registry.get(job.get("jobtype", ""))
        if entry is None:
            exc = UnknownJobTypeError(f"no function registered for jobtype {job.get('jobtype')!r}")
            return fail_call(job, exc)
        if entry.is_async:
            error = await self._run_async(entry, job)
        elif self.threads is not None:
            error = await self.threads.run(self._run_sync, entry, job)
        else:
            loop = asyncio.get_running_loop()
            error = await loop.run_in_executor(None, self._run_sync, entry, job)
        if error is None:
            return CALLS.ack(job["jid"])
        return fail_call(job, error)

    def _before(self, job: dict[str, Any]) -> None:
        for middleware in self.middleware:
            middleware.before_job(job)

    def _after(self, job: dict[str, Any], exc: BaseException | None) -> BaseException | None:
        for middleware in reversed(self.middleware):
            try:
                middleware.after_job(job, exc)
            except Exception as hook_exc:  # a failing hook fails the job
                exc = hook_exc
        return exc

    def _run_sync(self, entry: Registration, job: dict[str, Any]) -> BaseException | None:
        token = _current.set(job)
        error: BaseException | None = None
        try:
            self._before(job)
            entry.func(*job.get("args", ()))
        except Exception as exc:
            error = exc
        finally:
            _current.reset(token)
        return self._after(job, error) if self.middleware else error

    async def _run_async(self, entry: Registration, job: dict[str, Any]) -> BaseException | None:
        token = _current.set(job)
        error: BaseException | None = None
        try:
            self._before(job)
            await entry.func(*job.get("args", ()))
        except Exception as exc:
            error = exc
        finally:
            _current.reset(token)
        return self._after(job, error) if self.middleware else error
