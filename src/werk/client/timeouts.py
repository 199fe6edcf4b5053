"""Job timeouts (a Werk client extension): how long a job may run, and what happens then.

A job runs for at most its ``custom.timeout`` seconds, else its registration's ``timeout``.
Past it the job is FAILed with errtype ``JobTimeout``, once, whatever the job then does. A
coroutine is cancelled (``CancelledError`` at its ``await``; one that catches it and
returns is still reported ``JobTimeout``). A plain function cannot be stopped safely: by
default the FAIL goes out at the timeout, the function runs on in its thread and the
processor's slot stays busy (no new FETCH) until it returns, so no more than
``concurrency`` functions ever run. A coroutine that holds the event loop past its
timeout (``time.sleep``, no ``await``) cannot be cancelled: when it ends it is reported
``JobTimeout`` all the same.

The timeout bounds the job's function alone: the middleware's ``before_job`` and
``after_job`` hooks around it are not timed (a plain function's thread notes when the
function starts and ends, :class:`Span`), so a slow hook delays the job's report but never
makes it ``JobTimeout``.

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
import time
from collections.abc import Callable
from typing import Any

from werk.client.registration import Registration
from werk.client.timelimit import JobTimeoutError, TimeLimit, timed_out

UNWIND_GRACE = 1.0
"""Seconds a plain function interrupted at its timeout (``interrupt=True``) gets to unwind
before its FAIL goes out without waiting for it (its slot stays busy until it returns)."""

Outcome = tuple[BaseException | None, Any]
"""What running a job's function gave: its exception (or ``None``) and its return value."""


def job_timeout(job: dict[str, Any], entry: Registration) -> float | None:
    """The job's ``custom.timeout`` when it is a positive number, else the registration's."""
    custom = job.get("custom")
    if custom:
        value = custom.get("timeout") if isinstance(custom, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    return entry.timeout


class Span:
    """When a plain function started and whether it ended, written by its thread and read
    by the event loop at the deadline: the job's timeout runs from the function's start, and
    the middleware's ``before_job`` and ``after_job`` hooks, which run in the same thread
    around the function, are not timed (nor are they for a coroutine). Plain attributes, no
    wake-up of the loop: a job costs nothing more unless it reaches its deadline."""

    __slots__ = ("ended", "started")

    def __init__(self) -> None:
        self.started: float | None = None
        """``time.monotonic()`` when the function started; ``None`` before."""
        self.ended = False
        """Whether the function returned or raised."""

    def start(self) -> None:
        """The function starts (call in its thread)."""
        self.started = time.monotonic()

    def end(self) -> None:
        """The function returned or raised (call in its thread)."""
        self.ended = True


Start = Callable[[TimeLimit | None, Span | None], asyncio.Future[Outcome]]
"""Starts a plain function on a thread with its limit and span; returns its future."""


async def run_in_thread(
    start: Start, timeout: float | None, interrupt: bool
) -> tuple[BaseException | None, Any, asyncio.Future[Outcome] | None]:
    """Run a plain function on a thread, started by ``start(limit, span)`` (``limit``: its
    :class:`~werk.client.timelimit.TimeLimit` with ``interrupt``, else ``None``; ``span``:
    its :class:`Span` with a ``timeout``, else ``None``): its outcome, and its future when
    the function is still running ``timeout`` seconds after it started (then the error is
    a :class:`JobTimeoutError`): at once by default, :data:`UNWIND_GRACE` seconds after it
    was interrupted with ``interrupt=True``. The middleware hooks around it are not timed."""
    if timeout is None:
        error, value = await start(None, None)
        return error, value, None
    limit = TimeLimit(timeout) if interrupt else None
    span = Span()
    future = start(limit, span)
    ended = await _ended_in_time(future, span, timeout)
    if not ended and limit is not None:
        limit.expire()
        await asyncio.wait((future,), timeout=UNWIND_GRACE)
        ended = future.done() or span.ended
    if ended:
        error, value = await future  # its after_job hooks may still be running
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


async def _ended_in_time(future: asyncio.Future[Outcome], span: Span, timeout: float) -> bool:
    """Wait until the function ended or ran ``timeout`` seconds, counted from its start (not
    from its before_job hooks'); whether it ended."""
    wait = timeout
    while True:
        done, _ = await asyncio.wait((future,), timeout=wait)
        if done or span.ended:
            return True
        if span.started is not None:  # else its before_job hooks still run: not timed
            wait = span.started + timeout - time.monotonic()
            if wait <= 0:
                return False


def held_loop(timeout: float, error: BaseException | None) -> JobTimeoutError:
    """The error a coroutine is reported with when it ran past its timeout without giving
    the event loop a chance to cancel it (it held the loop, :mod:`werk.client.stalls`),
    whatever it then returned or raised."""
    return timed_out(timeout, error, "held the event loop", asyncio.CancelledError)


def cancelled(timeout: float, error: BaseException | None) -> JobTimeoutError:
    """The error a coroutine cancelled at its timeout is reported with (even one that caught
    the ``CancelledError`` and returned), with the backtrace of the ``await`` it was at."""
    if isinstance(error, TimeoutError) and isinstance(error.__context__, asyncio.CancelledError):
        error = error.__context__  # the timeout's own TimeoutError, raised from it
    return timed_out(timeout, error, "cancelled", asyncio.CancelledError)
