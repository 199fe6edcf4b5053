"""How a worker stops: the signals that ask it to, and its shutdown phase.

SIGTERM and SIGINT begin the graceful shutdown (a second one ends the wait at once), SIGTSTP
quiets. Once stopping, running jobs get ``shutdown_timeout`` seconds to finish and be
reported; jobs still running then are handed back to the server (the processors FAIL them
with errtype ``WorkerShutdown``), and the processors stop reconnecting.

A process forked from the worker (a job's ``multiprocessing.Pool`` with the ``fork`` start
method, a bare ``os.fork()``) would inherit the event loop's signal set-up: its wakeup fd,
shared with the worker, would carry a SIGTERM sent to that process to the worker's loop as
if the worker had been told to stop, and its do-nothing Python handler would keep the
process alive (``Pool.terminate()`` could not end it). So while the worker's handlers are
in place, a forked child returns to a plain Python program's signal set-up
(:func:`_reset_in_child`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from typing import Any, Final

from werk.client.processor import Processor
from werk.client.state import WorkerHost

log = logging.getLogger("werk.worker")

STOP_SIGNALS: Final = frozenset(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGTSTP") if hasattr(signal, name)
)
"""The signals a worker handles (stop, stop, quiet): :meth:`Worker.run
<werk.client.worker.Worker.run>` unblocks them once its handlers are in place."""

REPORT_GRACE = 5.0
"""Seconds allowed after the shutdown deadline to FAIL back unfinished jobs."""

_loop_handlers: dict[int, Any] = {}
"""The Python-level handler the event loop installed, by signal, while a worker's handlers
are in place (what a forked child finds, and resets)."""
_fork_hook = False
"""Whether :func:`_reset_in_child` is registered to run in forked children (once per
process: an at-fork hook cannot be removed)."""


def handle_signals(stop: Callable[..., None], quiet: Callable[[], None]) -> None:
    """Have the running loop call ``stop()`` on SIGTERM/SIGINT (``stop(force=True)`` on the
    second) and ``quiet()`` on SIGTSTP, then unblock them. Call from the main thread."""
    loop = asyncio.get_running_loop()
    interrupts = 0

    def on_signal(name: str) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1:
            log.warning("second %s: stopping without waiting for running jobs", name)
            stop(force=True)
        else:
            log.info("%s: stopping gracefully (send it again to stop at once)", name)
            stop()

    loop.add_signal_handler(signal.SIGTERM, on_signal, "SIGTERM")
    loop.add_signal_handler(signal.SIGINT, on_signal, "SIGINT")
    if hasattr(signal, "SIGTSTP"):
        loop.add_signal_handler(signal.SIGTSTP, quiet)
    _loop_handlers.clear()
    _loop_handlers.update((signum, signal.getsignal(signum)) for signum in STOP_SIGNALS)
    global _fork_hook
    if not _fork_hook and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_reset_in_child)
        _fork_hook = True
    if hasattr(signal, "pthread_sigmask"):
        # ``werk worker -p`` starts its workers with these blocked, so that a stop sent
        # while one starts up waits for its handler instead of killing it.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _reset_in_child() -> None:
    """In a process just forked from a worker whose loop handles the stop signals: give
    them back their defaults (SIGINT raises ``KeyboardInterrupt``, SIGTERM and SIGTSTP act
    as the system's default), unblock them, and clear the loop's wakeup fd, as in a child
    of a plain Python program. The worker's own signals stay its own: it acts on those sent
    to its pid only. Runs in the child's only thread, its main thread now."""
    if not _loop_handlers or signal.getsignal(signal.SIGTERM) is not _loop_handlers.get(
        signal.SIGTERM
    ):
        return  # the worker's handlers are gone: the program's own set-up stays
    for signum, handler in _loop_handlers.items():
        if signal.getsignal(signum) is handler:
            default = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
            signal.signal(signum, default)
    _loop_handlers.clear()
    signal.set_wakeup_fd(-1)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


async def supervise(
    worker: WorkerHost,
    processors: list[Processor],
    tasks: list[asyncio.Task[None]],
    forced: asyncio.Event,
) -> None:
    """Wait while ``worker`` runs, then shut it down; return once its processors' ``tasks``
    ended or were given up on.

    A processor that ends with an error (a fatal connection error such as a wrong password,
    or :class:`~werk.client.processor.WorkerCrashedError`) stops the worker as a stop
    request does: the other processors' running jobs get ``shutdown_timeout`` seconds to
    finish, as at any shutdown. Then the first such error is raised.

    Raises:
        Exception: the first error a processor ended with.
    """
    await _shutdown(worker, processors, tasks, forced)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


async def _shutdown(
    worker: WorkerHost,
    processors: list[Processor],
    tasks: list[asyncio.Task[None]],
    forced: asyncio.Event,
) -> None:
    # Running: wait for a stop request, or a processor ending with an error.
    stop_wait = asyncio.create_task(_stopping(worker))
    await asyncio.wait([stop_wait, *tasks], return_when=asyncio.FIRST_COMPLETED)
    stop_wait.cancel()
    worker.stop()
    # Shutdown: running jobs get shutdown_timeout seconds to finish and be reported,
    # unless a forced stop (a second signal) ends the wait. With no job to report, a
    # processor still trying to reach the server has nothing to reconnect for.
    if not any(_holds_work(processor) for processor in processors):
        worker.give_up.set()
    finished: asyncio.Future[Any] = asyncio.gather(*tasks, return_exceptions=True)
    force: asyncio.Future[Any] = asyncio.ensure_future(forced.wait())
    await asyncio.wait(
        [finished, force], timeout=worker.shutdown_timeout, return_when=asyncio.FIRST_COMPLETED
    )
    force.cancel()
    pending = {task for task in tasks if not task.done()}
    if not pending:
        return
    if not any(_runs_job(processor) for processor in processors):
        worker.give_up.set()  # a report still unsent is logged as given up
        await asyncio.wait(pending, timeout=1.0)
        return
    # Deadline: hand back jobs still running, then stop reconnecting.
    for processor in processors:
        if _runs_job(processor):
            processor.abandon = True
            tasks[processor.index].cancel()
    _, pending = await asyncio.wait(pending, timeout=REPORT_GRACE)
    worker.give_up.set()
    if pending:
        await asyncio.wait(pending, timeout=1.0)


async def _stopping(worker: WorkerHost) -> None:
    while not worker.stopping:
        await worker.wait_state_change()


def _runs_job(processor: Processor) -> bool:
    """Whether a processor runs a job (or a timed-out job's thread)."""
    return processor.job is not None or processor.lingering


def _holds_work(processor: Processor) -> bool:
    """Whether a processor runs a job or still has one to report to the server."""
    return _runs_job(processor) or processor.unreported
