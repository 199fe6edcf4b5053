"""Periodic work: moving due jobs, reaping reservations and silent processes, purging dead,
rewriting the server's liveness record.

Scheduled and retry jobs move when they are due, not on a fixed tick: the mover sleeps
until the earliest due time (at most :data:`MAX_SLEEP`, so jobs added by another server
sharing the store are seen too) and is woken early when an earlier job arrives. Every task
is safe to run on every server at once: the store's steps are atomic.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from werk.manager.servers import SERVER_BEAT
from werk.protocol import jsonwire
from werk.storage.base import SetName, TransactionalIntake

if TYPE_CHECKING:
    from werk.server.state import ServerState

log = logging.getLogger("werk.tasks")

MAX_SLEEP = 0.5
RESERVATION_PERIOD = 1.0
HEARTBEAT_PERIOD = 15.0
DEAD_PERIOD = 60.0
INTAKE_PERIOD = 5.0
"""Seconds between looks at a transactional intake when no notification came."""
RESTART_GRACE_ENV = "WERK_TEST_RESTART_GRACE"
"""For tests only: the server's environment may shorten :data:`RESTART_GRACE` (seconds)."""
RESTART_GRACE = float(os.environ.get(RESTART_GRACE_ENV, "") or 30.0)
"""Seconds after a start during which reservations made before it are not reaped: twice
the worker's 15 s heartbeat. While no server ran, no worker could renew its reservations
(TRACK SET ``reserve_until``), so some expired through no fault of theirs; their workers
get this long to reconnect and renew (or ACK) before the jobs count as lost. On a store
shared by several servers the others keep reaping meanwhile: they were running."""
NAMED = 5
"""How many reaped jobs the reaper's log line names (``jid (jobtype)``) before "and N more"."""


@dataclass
class SetTask:
    """Counters of one set's periodic task, as INFO reports them."""

    enqueued: int = 0
    cycles: int = 0
    wall_time_sec: float = 0.0


@dataclass
class TaskStats:
    """What the periodic tasks have done since start, for INFO and the web UI."""

    sets: dict[str, SetTask] = field(default_factory=dict)
    reservations_reaped: int = 0
    processes_reaped: int = 0
    errors: int = 0

    def set_stats(self, name: str, size: int) -> dict[str, Any]:
        """Return the INFO ``tasks`` entry of a set."""
        task = self.sets.get(name, SetTask())
        return {
            "enqueued": task.enqueued,
            "cycles": task.cycles,
            "size": size,
            "wall_time_sec": round(task.wall_time_sec, 6),
        }

    def record(self, name: str, moved: int, seconds: float) -> None:
        """Count one run of a set's task."""
        task = self.sets.setdefault(name, SetTask())
        task.enqueued += moved
        task.cycles += 1
        task.wall_time_sec += seconds


class Tasks:
    """The server's background tasks; ``start`` and ``stop`` them with the server."""

    def __init__(self, server: ServerState) -> None:
        self.server = server
        self.stats = TaskStats()
        self._wake = asyncio.Event()
        self._next_due: float | None = None
        self._running: list[asyncio.Task[None]] = []
        self._stopping = False
        self._started = server.manager.clock()
        server.manager.on_scheduled(self._scheduled)

    def _scheduled(self, due: float) -> None:
        if self._next_due is None or due < self._next_due:
            self._next_due = due
            self._wake.set()

    def start(self) -> None:
        """Start every periodic task."""
        self._stopping = False
        self._started = self.server.manager.clock()
        self._running = [
            asyncio.create_task(self._mover(), name="werk-mover"),
            asyncio.create_task(self._every(RESERVATION_PERIOD, self._reap_reservations)),
            asyncio.create_task(self._every(HEARTBEAT_PERIOD, self._reap_processes)),
            asyncio.create_task(self._every(DEAD_PERIOD, self._purge_dead)),
            asyncio.create_task(self._every(SERVER_BEAT, self.server.processes.announce)),
        ]
        store = self.server.manager.store
        if isinstance(store, TransactionalIntake):
            self._running.append(asyncio.create_task(self._intake(store), name="werk-intake"))

    async def stop(self) -> None:
        """Cancel the tasks and wait for them.

        The loops also check a flag after each step: a store driver that swallows a
        cancellation inside a step must not keep a loop (and this wait) alive.
        """
        self._stopping = True
        self._wake.set()
        for task in self._running:
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        self._running = []

    async def _mover(self) -> None:
        manager = self.server.manager
        while not self._stopping:
            # Clear first: a job scheduled while we look must wake the wait below.
            self._wake.clear()
            try:
                for name in ("scheduled", "retries"):
                    set_name: SetName = "scheduled" if name == "scheduled" else "retries"
                    started = time.perf_counter()
                    moved = await manager.move_due(set_name)
                    self.stats.record(name, moved, time.perf_counter() - started)
                self._next_due = await manager.next_due()
            except Exception:
                self.stats.errors += 1
                log.exception("moving due jobs failed")
                self._next_due = None
            delay = MAX_SLEEP
            if self._next_due is not None:
                delay = min(MAX_SLEEP, max(0.0, self._next_due - manager.clock()))
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _intake(self, store: TransactionalIntake) -> None:
        # Jobs applications committed in their own transactions: PUSH each, exactly once.
        wake = asyncio.Event()
        store.on_intake(wake.set)
        wake.set()  # rows committed while no server ran
        while not self._stopping:
            try:
                async with asyncio.timeout(INTAKE_PERIOD):
                    await wake.wait()
            except TimeoutError:
                pass
            wake.clear()
            try:
                while await store.take_intake(self._push_committed):
                    pass
            except Exception:
                self.stats.errors += 1
                log.exception("taking transactional pushes failed")

    async def _push_committed(self, raw: bytes) -> None:
        # Decoded as PUSH decodes its argument (depth limit, no NaN): InvalidJSONError refuses.
        await self.server.manager.push(jsonwire.loads(raw))

    async def _every(self, period: float, step: Any) -> None:
        while not self._stopping:
            await asyncio.sleep(period)
            try:
                await step()
            except Exception:
                self.stats.errors += 1
                log.exception("periodic task %s failed", step.__name__)

    async def _reap_reservations(self) -> None:
        manager = self.server.manager
        in_grace = manager.clock() < self._started + RESTART_GRACE
        reaped = await manager.reap_reservations(spare_before=self._started if in_grace else None)
        self.stats.reservations_reaped += len(reaped)
        if reaped:
            named = ", ".join(f"{entry.jid} ({entry.jobtype})" for entry in reaped[:NAMED])
            more = f" and {len(reaped) - NAMED} more" if len(reaped) > NAMED else ""
            log.info("reaped %d expired reservations: %s%s", len(reaped), named, more)

    async def _reap_processes(self) -> None:
        await self.server.processes.refresh(self.server.connected_wids())
        gone = await self.server.processes.reap()
        self.stats.processes_reaped += len(gone)
        closed = sum(self.server.close_process(wid) for wid in gone)
        if closed:
            log.info("Reaped %d lingering connections", closed)

    async def _purge_dead(self) -> None:
        self.stats.sets.setdefault("dead", SetTask())
        started = time.perf_counter()
        removed = await self.server.manager.purge_dead()
        self.stats.record("dead", removed, time.perf_counter() - started)
