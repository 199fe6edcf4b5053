"""Noticing an ``async def`` job that blocks the worker's event loop.

An ``async def`` job runs on the worker's event loop, so code in it that does not await
(``time.sleep``, a long computation, a blocking client) holds the loop: every other slot,
the heartbeat and the stop signals wait, and the job's own timeout cannot cancel it (the
timeout's callback needs the loop too). :class:`LoopWatch` notices: a timer on the loop
knows how late it fires, and a thread looking on names the task holding the loop while it
is held. A stall of :data:`STALL_WARNING` seconds or more caused by a job is logged as a
warning naming the job (jobtype, jid, how long). The job's report is the runner's: one
that held the loop past its timeout is FAILed as ``JobTimeout``
(:func:`~werk.client.timeouts.held_loop`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("werk.worker")

STALL_WARNING = 1.0
"""Seconds a job may hold the event loop before a warning names it."""
TICK = 0.25
"""Seconds between the loop's timer and between the looking-on thread's checks."""

JobOf = Callable[["asyncio.Task[Any]"], "dict[str, Any] | None"]
"""The job a task runs (a processor's task and its current job), or ``None``."""


class LoopWatch:
    """Warns when a job held the running loop for :data:`STALL_WARNING` seconds or more.

    Args:
        job_of: the job a task runs, if any.
    """

    def __init__(self, job_of: JobOf) -> None:
        self.job_of = job_of
        self._tick = time.monotonic()
        self._held_by: dict[str, Any] | None = None
        self._done = threading.Event()

    async def run(self) -> None:
        """Time the loop until cancelled."""
        loop = asyncio.get_running_loop()
        self._tick = time.monotonic()
        watcher = threading.Thread(
            target=self._look_on, args=(loop,), name="werk-loop-watch", daemon=True
        )
        watcher.start()
        try:
            while True:
                due = time.monotonic() + TICK
                await asyncio.sleep(TICK)
                self._tick = now = time.monotonic()
                job, self._held_by = self._held_by, None
                late = now - due
                if late >= STALL_WARNING and job is not None:
                    log.warning(
                        "job %s %s: held the event loop for %.1fs (it runs on the loop:"
                        " code that does not await, such as time.sleep or a blocking"
                        " call, stops every other job and the heartbeat meanwhile; use"
                        " asyncio.sleep, an async client, asyncio.to_thread, or a plain"
                        " def job)",
                        job.get("jid"),
                        job.get("jobtype", ""),
                        late,
                        extra={"jid": job.get("jid"), "jobtype": job.get("jobtype")},
                    )
        finally:
            self._done.set()

    def _look_on(self, loop: asyncio.AbstractEventLoop) -> None:
        """In a thread: while the loop's timer is overdue, note the job holding the loop."""
        while not self._done.wait(TICK):
            if self._held_by is not None or time.monotonic() - self._tick < STALL_WARNING:
                continue
            task = asyncio.current_task(loop)
            if task is not None:
                self._held_by = self.job_of(task)
