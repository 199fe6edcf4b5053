"""Running one fetched job: find its function, call it with middleware, build the report.

The result of running a job is the command that reports it: ``ACK`` when the function
returned, ``FAIL`` with the exception's type, message and trimmed backtrace when it raised.
``async def`` functions run right on the event loop; plain functions run on a thread pool,
with their middleware hooks, in one hop.

Every job is logged on the ``werk.worker`` logger with its jid and jobtype in the message
and as the record's ``jid``/``jobtype`` attributes: its start (debug), its success with
its duration (info), its failure with the exception and traceback (warning; error for an
unknown jobtype, naming its queue and the jobtypes this worker runs, or a timeout).

**Timeouts** (a Werk client extension): a job runs for at most its ``custom.timeout``
seconds, else its registration's ``timeout``. Past it the job is FAILed with errtype
``JobTimeout``, once, whatever the job then does. A coroutine is cancelled
(``CancelledError`` at its ``await``; one that catches it and returns is still reported
``JobTimeout``). A plain function cannot be stopped safely: by default the FAIL goes out at
the timeout, the function runs on in its thread and the processor's slot stays busy (no new
FETCH) until it returns, so no more than ``concurrency`` functions ever run.

A registration with ``interrupt=True`` (opt-in) has the function interrupted instead:
:class:`~werk.client.timelimit.TimeLimit` raises ``JobTimeoutError`` in its thread
(Dramatiq's technique; Celery's ``soft_time_limit`` is the precedent), its
``except``/``finally`` run, and the FAIL goes out once it unwound, with the backtrace of the
line it was running. The exception lands at any Python instruction, in library code too:
inside ``logging`` or a connection pool holding a lock, that lock stays held and every
thread needing it, the worker's event loop among them, waits forever (no report, no
heartbeat, no reaction to SIGTERM). Opt in only for code that takes no locks (pure
computation). A thread inside a call that does not return to Python (``time.sleep``, a
socket read) gets the exception only when that call returns: if the function has not
unwound :data:`UNWIND_GRACE` seconds after the timeout, the FAIL goes out then and the slot
stays busy until the function returns.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import traceback
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final

from werk.client.client import CALLS
from werk.client.exhausted import ExhaustedHook, last_fail
from werk.client.failures import RetryIn
from werk.client.middleware import Middleware
from werk.client.proto import Call
from werk.client.results import ResultRefusedError, encode_result
from werk.client.retrypolicy import RetryDelay, RetryOn, check_retry_on, policy_fields
from werk.client.threads import JobThreads
from werk.client.timelimit import JobTimeoutError, TimeLimit, timed_out
from werk.fate import RATE_LIMITED, WORKER_SHUTDOWN

DEFAULT_BACKTRACE = 30
"""Backtrace lines reported when the job does not ask for a number (``backtrace`` 0/unset)."""
SHUTDOWN_ERRTYPE: Final = WORKER_SHUTDOWN
"""``errtype`` of jobs handed back to the server because the worker stopped: a Werk server
puts them back in their queue at once without using a retry (Faktory: an ordinary failure)."""
RATE_LIMITED_ERRTYPE: Final = RATE_LIMITED
"""The ``errtype`` a worker sends in FAIL for :class:`werk.client.limits.RateLimited`."""
UNWIND_GRACE = 1.0
"""Seconds a plain function interrupted at its timeout (``interrupt=True``) gets to unwind
before its FAIL goes out without waiting for it (its slot stays busy until it returns)."""

log = logging.getLogger("werk.worker")

_current: ContextVar[dict[str, Any] | None] = ContextVar("werk_current_job", default=None)


def current_job() -> dict[str, Any] | None:
    """Return the payload of the job running in this thread or task, or ``None``."""
    return _current.get()


class UnknownJobTypeError(Exception):
    """A job arrived whose ``jobtype`` no function was registered for."""

    @classmethod
    def for_job(cls, job: dict[str, Any], registry: dict[str, Registration]) -> UnknownJobTypeError:
        """The error for ``job`` given ``registry``, with :func:`unknown_jobtype_message`:
        the one text the worker FAILs the job with and
        :class:`~werk.client.testing.InlineClient` raises."""
        return cls(unknown_jobtype_message(job, registry))


@dataclass(frozen=True, slots=True)
class Registration:
    """A registered job function, whether it is a coroutine function, its timeout in
    seconds (``None``: no limit), its retries-exhausted hook, its retry policy
    (:mod:`werk.client.retrypolicy`: ``retry_in``, ``retry_on``) and whether a plain
    function past its timeout is interrupted (``interrupt``; see the module docstring)."""

    name: str
    func: Callable[..., Any]
    is_async: bool
    timeout: float | None = None
    on_retries_exhausted: ExhaustedHook | None = None
    retry_in: RetryDelay | None = None
    retry_on: RetryOn | None = None
    interrupt: bool = False

    @classmethod
    def of(
        cls,
        name: str,
        func: Callable[..., Any],
        timeout: float | None = None,
        on_retries_exhausted: ExhaustedHook | None = None,
        retry_in: RetryDelay | None = None,
        retry_on: RetryOn | type[BaseException] | None = None,
        interrupt: bool = False,
    ) -> Registration:
        """Describe ``func`` registered under ``name``.

        Raises:
            ValueError: ``timeout`` is not positive.
            TypeError: ``retry_in`` is not callable, or ``retry_on`` holds something
                that is not an exception class.
        """
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive seconds")
        if retry_in is not None and not callable(retry_in):
            raise TypeError(f"retry_in takes a callable or a Backoff, not {retry_in!r}")
        is_async = inspect.iscoroutinefunction(func)
        classes = check_retry_on(retry_on)
        return cls(
            name, func, is_async, timeout, on_retries_exhausted, retry_in, classes, interrupt
        )


def _extra(job: dict[str, Any]) -> dict[str, Any]:
    """The ``extra`` of a job's log records: its ``jid`` and ``jobtype``."""
    return {"jid": job.get("jid"), "jobtype": job.get("jobtype")}


def job_timeout(job: dict[str, Any], entry: Registration) -> float | None:
    """The job's ``custom.timeout`` when it is a positive number, else the registration's."""
    custom = job.get("custom")
    if custom:
        value = custom.get("timeout") if isinstance(custom, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    return entry.timeout


def backtrace_lines(exc: BaseException, limit: int) -> list[str]:
    """Return the innermost ``limit`` frames of ``exc`` as ``file:line:in `func'`` lines."""
    frames = traceback.extract_tb(exc.__traceback__)
    lines = [f"{f.filename}:{f.lineno}:in `{f.name}'" for f in frames]
    return lines[-limit:][::-1] if limit > 0 else []


def fail_call(
    job: dict[str, Any],
    exc: BaseException,
    errtype: str | None = None,
    fields: dict[str, Any] | None = None,
) -> Call[None]:
    """Build the FAIL reporting ``exc`` for ``job``, trimmed to the job's ``backtrace``.

    The errtype is the exception's class name, unless the exception has a string
    ``errtype`` attribute (as :class:`werk.client.limits.RateLimited` does). Werk's
    ``dead`` and ``retry_in`` fields are ``fields`` (:meth:`Runner.fail_fields`), else
    those of a :class:`~werk.client.failures.NoRetry` or
    :class:`~werk.client.failures.RetryIn`.
    """
    wanted = job.get("backtrace")
    limit = wanted if isinstance(wanted, int) and wanted > 0 else DEFAULT_BACKTRACE
    message = str(exc) or type(exc).__name__
    extra = _fail_fields(exc) if fields is None else fields
    return CALLS.fail(
        str(job.get("jid", "")),
        errtype or reported_errtype(exc),
        message,
        backtrace_lines(exc, limit),
        retry_in=extra.get("retry_in"),
        dead=bool(extra.get("dead")),
    )


def reported_errtype(exc: BaseException) -> str:
    """The errtype a FAIL reports for ``exc``: its string ``errtype`` attribute when it has
    one (an exception may name its own), else its class name."""
    declared = getattr(exc, "errtype", None)
    return declared if isinstance(declared, str) and declared else type(exc).__name__


def _fail_fields(exc: BaseException) -> dict[str, Any]:
    """Werk's FAIL fields an exception asks for (:mod:`werk.client.failures`)."""
    fields = getattr(exc, "fail_fields", None)
    return fields if isinstance(fields, dict) else {}


Outcome = tuple[BaseException | None, Any]
"""What running a job's function gave: its exception (or ``None``) and its return value."""


def wants_result(job: dict[str, Any]) -> bool:
    """Whether the server wants the job's return value on ACK: the job asked it to keep
    its result (``custom.result_ttl``), or the next step of its chain takes it
    (``custom.chain[0].custom.chain_result``, Werk's chains extension)."""
    custom = job.get("custom")
    if not isinstance(custom, dict):
        return False
    if custom.get("result_ttl") is not None:
        return True
    steps = custom.get("chain")
    step = steps[0] if isinstance(steps, list) and steps else None
    then = step.get("custom") if isinstance(step, dict) else None
    return isinstance(then, dict) and then.get("chain_result") is True


@dataclass(frozen=True, slots=True)
class ResultAck(Call[None]):
    """The ACK of a job that carries its return value (Werk's results extension).

    Whether the job is done is the server's say (it may refuse the result as too large),
    so the job's "done" line is logged only once the server accepts it: :meth:`answered`,
    called as soon as the ACK's own reply is read.
    """

    jid: str = ""
    jobtype: str = ""
    elapsed: float = 0.0
    job: dict[str, Any] = field(default_factory=dict)
    """The payload as fetched (for the FAIL sent instead if the server refuses the result)."""

    def answered(self, outcome: Any) -> None:
        """Log the job's "done" line if the server accepted the ACK (answered ``None``);
        a refusal is the processor's to handle (it may FAIL the job instead)."""
        if outcome is None:
            self.log_done()

    def log_done(self) -> None:
        """Log the job's success, as :meth:`Runner.run` does for an ACK without result."""
        if log.isEnabledFor(logging.INFO):
            extra = {"jid": self.jid, "jobtype": self.jobtype}
            log.info("job %s %s: done in %.3fs", self.jid, self.jobtype, self.elapsed, extra=extra)


def result_ack(job: dict[str, Any], value: Any, elapsed: float) -> ResultAck:
    """Build the ACK of a job that returned ``value`` and asked for its result.

    Raises:
        ResultRefusedError: the server would refuse the value (too deep, not JSON); the
            job fails with it instead (:meth:`Runner.result_refused`).
    """
    jid = job["jid"]
    call = CALLS.ack_encoded(jid, encode_result(value))
    jobtype = str(job.get("jobtype", ""))
    return ResultAck(call.data, call.parse, call.wait, jid, jobtype, elapsed, job)


KNOWN_SHOWN = 10
"""How many of a worker's jobtypes an unknown jobtype's message lists."""


def known_jobtypes(registry: dict[str, Registration], shown: int | None = None) -> str:
    """Say which jobtypes a worker runs: the registry's own ``known()`` description when it
    has one (the Django worker resolves task paths on demand), else the sorted names, the
    first ``shown`` of them (``None``: all), or ``none``."""
    described = getattr(registry, "known", None)
    if callable(described):
        return str(described())
    names = sorted(registry)
    known = ", ".join(names if shown is None else names[:shown]) or "none"
    if shown is not None and len(names) > shown:
        known += f" and {len(names) - shown} more"
    return known


def unknown_jobtype_message(job: dict[str, Any], registry: dict[str, Registration]) -> str:
    """Say that no function runs ``job``'s jobtype, the queue the job came from, and the
    jobtypes this worker runs (the first :data:`KNOWN_SHOWN`, sorted; a registry with a
    ``known()`` method, such as the Django worker's, describes itself): the job was most
    likely pushed to a queue that workers of another kind also fetch.

    The job is FAILed, as Faktory's own workers do, and retried like any failure.
    """
    known = known_jobtypes(registry, KNOWN_SHOWN)
    return (
        f"no function registered for jobtype {job.get('jobtype', '')!r} (from queue"
        f" {job.get('queue', 'default')!r}; this worker runs {known}): push it to a queue"
        " that only workers running it fetch"
    )


def shutdown_call(job: dict[str, Any], reason: str) -> Call[None]:
    """Build the FAIL that hands ``job`` back to the server so that it runs again."""
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
            error, value, lingering = await self._in_thread(entry, job, timeout)
        if error is None:
            if value is None or not wants_result(job):
                # the outcome is settled: one "done" line
                if verbose:
                    elapsed = time.perf_counter() - started
                    log.info(
                        "job %s %s: done in %.3fs", job["jid"], jobtype, elapsed, extra=_extra(job)
                    )
                return CALLS.ack(job["jid"]), None
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
        own = _fail_fields(error)
        if own:
            return own
        entry = self.registry.get(job.get("jobtype", ""))
        if entry is None or (entry.retry_in is None and entry.retry_on is None):
            return {}
        return policy_fields(job, error, errtype, entry.retry_in, entry.retry_on)

    async def _in_thread(
        self, entry: Registration, job: dict[str, Any], timeout: float | None
    ) -> tuple[BaseException | None, Any, asyncio.Future[Any] | None]:
        """Run a plain function on a thread: its outcome, and its future when it is still
        running past ``timeout`` (then the error is a :class:`JobTimeoutError`): at once by
        default, :data:`UNWIND_GRACE` seconds after it was interrupted with
        ``interrupt=True``."""
        limit = TimeLimit(timeout) if timeout is not None and entry.interrupt else None
        if self.threads is not None:
            future = self.threads.run(self._run_sync, entry, job, limit)
        else:
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(None, self._run_sync, entry, job, limit)
        if timeout is None:
            error, value = await future
            return error, value, None
        done, _ = await asyncio.wait((future,), timeout=timeout)
        if not done and limit is not None:
            limit.expire()
            done, _ = await asyncio.wait((future,), timeout=UNWIND_GRACE)
        if done:
            error, value = future.result()
            return error, value, None
        if limit is None:
            error = JobTimeoutError(
                f"still running after its timeout of {timeout:g}s"
                " (its thread runs on; the slot stays busy until it returns)"
            )
        else:
            error = JobTimeoutError(
                f"interrupted after its timeout of {timeout:g}s, still running"
                f" {UNWIND_GRACE:g}s later (in a call that has not returned to Python, such"
                " as time.sleep or a socket read?); the slot stays busy until it returns"
            )
        return error, None, future

    @staticmethod
    def _log_failure(job: dict[str, Any], error: BaseException, elapsed: float) -> None:
        """Log a job's failure with its traceback.

        A rate-limited job (errtype ``werk.RateLimited``) is an expected event that uses no
        retry, and a :class:`~werk.client.failures.RetryIn` one the job asked for: one info
        line each, no traceback. A :class:`~werk.client.failures.NoRetry` is logged as a
        failure, with the traceback of the exception it was raised from."""
        if getattr(error, "errtype", None) == RATE_LIMITED_ERRTYPE:
            log.info(
                "job %s %s: rate limited after %.3fs (%s); rescheduled, using no retry",
                job.get("jid"),
                job.get("jobtype", ""),
                elapsed,
                error,
                extra=_extra(job),
            )
            return
        if isinstance(error, RetryIn):
            log.info(
                "job %s %s: retry in %gs asked after %.3fs (%s)",
                job.get("jid"),
                job.get("jobtype", ""),
                error.seconds,
                elapsed,
                error,
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
            error,
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
            except Exception as hook_exc:  # a failing hook fails the job
                exc = hook_exc
        return exc

    def _run_sync(
        self, entry: Registration, job: dict[str, Any], limit: TimeLimit | None = None
    ) -> Outcome:
        token = _current.set(job)
        error: BaseException | None = None
        value: Any = None
        try:
            self._before(job)
            if limit is None:
                value = entry.func(*job.get("args", ()))
            else:  # the limit's exception lands in this try, never past it
                value = limit.call(entry.func, job.get("args", ()))
        except Exception as exc:
            error = exc
        finally:
            _current.reset(token)
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
        except Exception as exc:
            error = exc
        finally:
            _current.reset(token)
        if scope is not None and timeout is not None and scope.expired():
            error, value = _cancelled(timeout, error), None
        return (self._after(job, error) if self.middleware else error), value


def _cancelled(timeout: float, error: BaseException | None) -> JobTimeoutError:
    """The error a coroutine cancelled at its timeout is reported with (even one that caught
    the ``CancelledError`` and returned), with the backtrace of the ``await`` it was at."""
    if isinstance(error, TimeoutError) and isinstance(error.__context__, asyncio.CancelledError):
        error = error.__context__  # the timeout's own TimeoutError, raised from it
    return timed_out(timeout, error, "cancelled", asyncio.CancelledError)
