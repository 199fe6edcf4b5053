"""Running one fetched job: find its function, call it with middleware, build the report.

The result of running a job is the command that reports it: ``ACK`` when the function
returned, ``FAIL`` with the exception's type, message and trimmed backtrace when it raised,
whatever it raised: ``SystemExit`` and ``KeyboardInterrupt`` too, but for the worker's own
cancellation and a real Ctrl-C (:func:`~werk.client.joberrors.is_job_failure`).
``async def`` functions run right on the event loop; plain functions run on a thread pool,
with their middleware hooks, in one hop.

Every job is logged on the ``werk.worker`` logger with its jid and jobtype in the message
and as the record's ``jid``/``jobtype`` attributes: its start (debug), its success with
its duration (info), its failure with the exception and traceback (warning; error for an
unknown jobtype, naming its queue and the jobtypes this worker runs, or a timeout).

How long a job may run, and what happens past it, is :mod:`werk.client.timeouts`; the
commands reporting a job are built by :mod:`werk.client.reports`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

from werk.client.client import CALLS
from werk.client.exhausted import ExhaustedHook, last_fail
from werk.client.failures import RetryIn
from werk.client.joberrors import attribute, describe, is_job_failure
from werk.client.middleware import Middleware
from werk.client.proto import Call
from werk.client.registration import Registration, UnknownJobTypeError
from werk.client.reports import (
    RATE_LIMITED_ERRTYPE,
    asked_fields,
    fail_call,
    reported_errtype,
    result_ack,
    wants_result,
)
from werk.client.results import ResultRefusedError
from werk.client.retrypolicy import policy_fields
from werk.client.threads import JobThreads
from werk.client.timelimit import JobTimeoutError, TimeLimit
from werk.client.timeouts import (
    Outcome,
    Span,
    cancelled,
    held_loop,
    job_timeout,
    run_in_thread,
)
from werk.fate import failure_fate, retry_limit

log = logging.getLogger("werk.worker")

_current: ContextVar[dict[str, Any] | None] = ContextVar("werk_current_job", default=None)


def current_job() -> dict[str, Any] | None:
    """Return the payload of the job running in this thread or task, or ``None``."""
    return _current.get()


def _extra(job: dict[str, Any]) -> dict[str, Any]:
    """The ``extra`` of a job's log records: its ``jid`` and ``jobtype``."""
    return {"jid": job.get("jid"), "jobtype": job.get("jobtype")}


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
        self._exhausted: list[ExhaustedHook] = [
            m.on_retries_exhausted
            for m in self.middleware
            if type(m).on_retries_exhausted is not Middleware.on_retries_exhausted
        ]
        """The middleware's retries-exhausted hooks (those that override the no-op)."""

    async def run(self, job: dict[str, Any]) -> tuple[Call[None], asyncio.Future[Any] | None]:
        """Run ``job``; return the ACK or FAIL that reports it, and, when a plain function
        ran past its timeout, the future of its still running thread (else ``None``)."""
        jobtype = job.get("jobtype", "")
        entry = self.registry.get(jobtype)
        if entry is None:
            exc = UnknownJobTypeError.for_job(job, self.registry)
            log.error("job %s %s: %s", job.get("jid"), jobtype, exc, extra=_extra(job))
            return self.last_fail(job, exc), None
        # One level check per job (DEBUG implies INFO); the common case builds no ``extra``.
        verbose = log.isEnabledFor(logging.INFO)
        if verbose and log.isEnabledFor(logging.DEBUG):
            log.debug("job %s %s: start", job.get("jid"), jobtype, extra=_extra(job))
        started = time.perf_counter()
        timeout = job_timeout(job, entry) if "custom" in job else entry.timeout
        lingering: asyncio.Future[Any] | None = None
        if entry.is_async:
            error, value = await self._run_async(entry, job, timeout)
        elif timeout is None and self.threads is not None:
            error, value = await self.threads.run(self._run_sync, entry, job)
        else:
            start = functools.partial(self._start_sync, entry, job)
            error, value, lingering = await run_in_thread(start, timeout, entry.interrupt)
        if error is None:
            if value is None or not wants_result(job):
                # the outcome is settled: one "done" line
                if verbose:
                    elapsed = time.perf_counter() - started
                    log.info(
                        "job %s %s: done in %.3fs", job["jid"], jobtype, elapsed, extra=_extra(job)
                    )
                return CALLS.ack(job["jid"], reserved=True), None
            # a result: "done" is logged when the server accepts it (ResultAck.log_done)
            elapsed = time.perf_counter() - started
            try:
                return result_ack(job, value, elapsed), None
            except ResultRefusedError as exc:
                return self.result_refused(job, exc, elapsed), None
        self._log_failure(job, error, time.perf_counter() - started)
        return self.last_fail(job, error), lingering

    def result_refused(
        self, job: dict[str, Any], error: ResultRefusedError, elapsed: float
    ) -> Call[None]:
        """Log that ``job`` failed because its return value was refused (by
        :func:`~werk.client.results.encode_result` before the ACK, or by the server in
        reply to it) and return the FAIL reporting it with the error's ``errtype``, as a
        :class:`~werk.client.exhausted.LastFail` when it ends the job's retries (with
        the job type's retry policy, :meth:`fail_fields`)."""
        jid, jobtype = job.get("jid"), job.get("jobtype", "")
        log.error(
            "job %s %s: failed after %.3fs: %s: %s",
            jid,
            jobtype,
            elapsed,
            error.errtype,
            error,
            extra=_extra(job),
        )
        return self.last_fail(job, error, error.errtype)

    def last_fail(
        self, job: dict[str, Any], error: BaseException, errtype: str | None = None
    ) -> Call[None]:
        """The FAIL of ``job`` reporting ``error`` (sent with ``errtype``, else the error's
        own) and Werk's fields (:meth:`fail_fields`), as a
        :class:`~werk.client.exhausted.LastFail` when it ends the job's retries and
        retries-exhausted hooks (its jobtype's, the middleware's) wait for it."""
        errtype = errtype or reported_errtype(error)
        fields = self.fail_fields(job, error, errtype)
        report = fail_call(job, error, errtype, fields)
        hooks = self._exhausted
        entry = self.registry.get(job.get("jobtype", ""))
        if entry is not None and entry.on_retries_exhausted is not None:
            hooks = [entry.on_retries_exhausted, *hooks]
        dead = bool(fields.get("dead"))
        return last_fail(report, job, error, errtype, dead, hooks)

    def fail_fields(
        self, job: dict[str, Any], error: BaseException, errtype: str
    ) -> dict[str, Any]:
        """Werk's FAIL fields (``dead``, ``retry_in``) for ``job`` failing with ``error``:
        those of a :class:`~werk.client.failures.NoRetry` or
        :class:`~werk.client.failures.RetryIn` it raised, else its job type's retry policy
        (:func:`~werk.client.retrypolicy.policy_fields`), else none."""
        own = asked_fields(error)
        if own:
            return own
        entry = self.registry.get(job.get("jobtype", ""))
        if entry is None or (entry.retry_in is None and entry.retry_on is None):
            return {}
        return policy_fields(job, error, errtype, entry.retry_in, entry.retry_on)

    def _start_sync(
        self, entry: Registration, job: dict[str, Any], limit: TimeLimit | None, span: Span | None
    ) -> asyncio.Future[Outcome]:
        if self.threads is not None:
            return self.threads.run(self._run_sync, entry, job, limit, span)
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(None, self._run_sync, entry, job, limit, span)

    @staticmethod
    def _log_failure(job: dict[str, Any], error: BaseException, elapsed: float) -> None:
        """Log a job's failure with its traceback.

        A rate-limited job (errtype ``werk.RateLimited``) is an expected event that uses no
        retry, and a :class:`~werk.client.failures.RetryIn` one the job asked for: one info
        line each, no traceback. A :class:`~werk.client.failures.NoRetry` is logged as a
        failure, with the traceback of the exception it was raised from."""
        if attribute(error, "errtype") == RATE_LIMITED_ERRTYPE:
            log.info(
                "job %s %s: rate limited after %.3fs (%s); rescheduled, using no retry",
                job.get("jid"),
                job.get("jobtype", ""),
                elapsed,
                describe(error),
                extra=_extra(job),
            )
            return
        if isinstance(error, RetryIn):
            fate = failure_fate(job, error.errtype)
            if fate == "retry":
                log.info(
                    "job %s %s: retry in %gs asked after %.3fs (%s)",
                    job.get("jid"),
                    job.get("jobtype", ""),
                    error.seconds,
                    elapsed,
                    describe(error),
                    extra=_extra(job),
                )
                return
            log.warning(
                "job %s %s: failed after %.3fs (%s); it asked for a retry in %gs but has no "
                "retry left (retry %s): %s",
                job.get("jid"),
                job.get("jobtype", ""),
                elapsed,
                describe(error),
                error.seconds,
                retry_limit(job),
                "discarded" if fate == "discard" else "sent to the dead set",
                extra=_extra(job),
            )
            return
        level = logging.ERROR if isinstance(error, JobTimeoutError) else logging.WARNING
        log.log(
            level,
            "job %s %s: failed after %.3fs: %s: %s",
            job.get("jid"),
            job.get("jobtype", ""),
            elapsed,
            type(error).__name__,
            describe(error),
            exc_info=error if error.__traceback__ is not None else None,
            extra=_extra(job),
        )

    def _before(self, job: dict[str, Any]) -> None:
        for middleware in self.middleware:
            middleware.before_job(job)

    def _after(self, job: dict[str, Any], exc: BaseException | None) -> BaseException | None:
        for middleware in reversed(self.middleware):
            try:
                middleware.after_job(job, exc)
            except BaseException as hook_exc:  # a failing hook fails the job
                if not is_job_failure(hook_exc):
                    raise
                exc = hook_exc
        return exc

    def _run_sync(
        self,
        entry: Registration,
        job: dict[str, Any],
        limit: TimeLimit | None = None,
        span: Span | None = None,
    ) -> Outcome:
        token = _current.set(job)
        error: BaseException | None = None
        value: Any = None
        try:
            self._before(job)
            if span is not None:
                span.start()
            if limit is None:
                value = entry.func(*job.get("args", ()))
            else:  # the limit's exception lands in this try, never past it
                value = limit.call(entry.func, job.get("args", ()))
        except BaseException as exc:  # SystemExit too: the job's failure (joberrors)
            if not is_job_failure(exc):
                raise
            error = exc
        finally:
            _current.reset(token)
        if span is not None:
            span.end()
        if limit is not None and limit.expired:
            error, value = limit.timed_out(error), None
        return (self._after(job, error) if self.middleware else error), value

    async def _run_async(
        self, entry: Registration, job: dict[str, Any], timeout: float | None = None
    ) -> Outcome:
        token = _current.set(job)
        error: BaseException | None = None
        value: Any = None
        scope: asyncio.Timeout | None = None
        try:
            self._before(job)
            if timeout is None:
                value = await entry.func(*job.get("args", ()))
            else:
                async with asyncio.timeout(timeout) as scope:
                    value = await entry.func(*job.get("args", ()))
        except BaseException as exc:  # SystemExit too; not the worker's cancellation
            if not is_job_failure(exc):
                raise
            error = exc
        finally:
            _current.reset(token)
        if scope is not None and timeout is not None:
            if scope.expired():
                error, value = cancelled(timeout, error), None
            elif asyncio.get_running_loop().time() >= (scope.when() or 0.0):
                error, value = held_loop(timeout, error), None  # too late to be cancelled
        return (self._after(job, error) if self.middleware else error), value
