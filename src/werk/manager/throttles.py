"""Queue throttles (Faktory Enterprise's) and the named rate limiters of the LIMIT verb.

``[throttles]`` maps a queue name to ``{ concurrency = N, timeout = S }`` (at most N jobs
of the queue reserved at once, across every server) or ``{ worker = N, timeout = S }``
(at most N per worker process). The middleware skips a full queue at FETCH; a job reserved
from a throttled queue takes a unit of a ``concurrent`` limiter held by its jid, released
at ACK or FAIL (or reservation expiry) and reclaimed by the store after ``timeout``. When
two servers race for the last unit, the loser hands its job back to the queue.
:class:`RateLimiters` is what ``LIMIT ACQUIRE`` runs: one try, or polling until ``wait``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from werk.errors import WerkError
from werk.manager.deadline import Deadline
from werk.manager.manager import Manager
from werk.manager.middleware import Middleware
from werk.storage.base import LimitKind, LimitResult, Placement, Reservation, Scored, Store

log = logging.getLogger("werk.throttles")

MAX_LIMIT: Final = 2**31 - 1
"""The largest limit of a limiter or throttle: what every store keeps (PostgreSQL's column is
a 32-bit integer; past 64 bits SQLite's overflowed with ``-ERR internal error``)."""
MIN_PERIOD: Final = 0.001
MAX_PERIOD: Final = 31_536_000
"""A limiter's ``period`` (a throttle's ``timeout``), in seconds: 1 ms to a year. Outside it
the stores' arithmetic breaks (``now / 1e-320`` is infinite) or a hold never ends."""
DEFAULT_TIMEOUT: Final = 60.0
"""Seconds after which a unit that was never released is reclaimed."""
PREFIX: Final = "throttle:"


class ThrottleConfigError(WerkError, ValueError):
    """The ``[throttles]`` table is invalid; the message names the queue."""


@dataclass(frozen=True, slots=True)
class Throttle:
    """One queue's throttle: ``limit`` jobs at once, cluster-wide or ``per_worker``."""

    queue: str
    limit: int
    timeout: float
    per_worker: bool

    def limiter(self, wid: str) -> str:
        """Return the name of the limiter counting this throttle's jobs (for ``wid``)."""
        if self.per_worker:
            return f"{PREFIX}{self.queue}:worker:{wid}"
        return PREFIX + self.queue

    @property
    def description(self) -> str:
        """The kind in words, as the UI shows it: ``"10 concurrent"``, ``"2 per worker"``."""
        return f"{self.limit} per worker" if self.per_worker else f"{self.limit} concurrent"


def _throttle(queue: str, raw: Any) -> Throttle:
    if not isinstance(raw, dict):
        raise ValueError("must be a table such as { concurrency = 2, timeout = 60 }")
    unknown = set(raw) - {"concurrency", "worker", "timeout"}
    if unknown:
        raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
    if ("concurrency" in raw) == ("worker" in raw):
        raise ValueError("needs exactly one of concurrency or worker")
    key = "worker" if "worker" in raw else "concurrency"
    limit = raw[key]
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"{key} must be a positive integer up to {MAX_LIMIT}, not {limit!r}")
    timeout = raw.get("timeout", DEFAULT_TIMEOUT)
    if (
        not isinstance(timeout, int | float)
        or isinstance(timeout, bool)
        or not MIN_PERIOD <= timeout <= MAX_PERIOD  # also refuses nan and inf (TOML has both)
    ):
        span = f"{MIN_PERIOD:g} to {MAX_PERIOD:,}"
        raise ValueError(f"timeout must be a number of seconds, {span}, not {timeout!r}")
    return Throttle(queue, limit, float(timeout), key == "worker")


def parse_throttles(settings: dict[str, Any]) -> dict[str, Throttle]:
    """Validate the ``[throttles]`` table of the parsed configuration.

    Raises:
        ThrottleConfigError: the table or one queue's throttle is invalid.
    """
    table = settings.get("throttles", {})
    if not isinstance(table, dict):
        raise ThrottleConfigError("[throttles] must be a table of queue = { ... }")
    throttles = {}
    for queue, raw in table.items():
        try:
            throttles[queue] = _throttle(str(queue), raw)
        except ValueError as exc:
            raise ThrottleConfigError(f"throttle for queue {queue!r}: {exc}") from exc
    return throttles


class ThrottleMiddleware(Middleware):
    """Enforces the throttles at FETCH and releases their units at ACK and FAIL.

    Args:
        store: the server's store (only its limiter and queue primitives are used).
        settings: the parsed configuration, for ``[throttles]``.

    Attributes:
        wake: called with queue names when a unit was released, so blocked FETCHes on
            this server look again at once (the server wires it to its waiters).
    """

    def __init__(self, store: Store, settings: dict[str, Any]) -> None:
        self.store = store
        self.throttles = parse_throttles(settings)
        self.wake: Callable[[Iterable[str]], None] | None = None
        self.handed_back = 0

    def reload(self, settings: dict[str, Any]) -> None:
        """Replace the throttles from reloaded settings (SIGHUP).

        Raises:
            ThrottleConfigError: the new table is invalid; the current one stays.
        """
        self.throttles = parse_throttles(settings)

    async def fetch(self, queues: Sequence[str], wid: str, now: float) -> Sequence[str]:
        """Drop the queues whose throttle has no free unit."""
        if not self.throttles:
            return queues
        allowed = []
        for queue in queues:
            throttle = self.throttles.get(queue)
            if throttle is None:
                allowed.append(queue)
            elif await self.store.limit_status(throttle.limiter(wid), now) < throttle.limit:
                allowed.append(queue)
        return allowed

    async def fetched(self, reservation: Reservation, now: float) -> bool:
        """Take the reserved job's unit; if another server took the last one, hand the
        job back to its queue (it is fetched again soon) and withhold it."""
        throttle = self.throttles.get(reservation.entry.queue)
        if throttle is None:
            return True
        name = throttle.limiter(reservation.wid)
        jid = reservation.entry.jid
        result = await self.store.limit_acquire(
            name, "concurrent", throttle.limit, throttle.timeout, jid, now
        )
        if result.acquired:
            return True
        await self._hand_back(reservation, now)
        return False

    async def _hand_back(self, reservation: Reservation, now: float) -> None:
        # Durable in the scheduled set first, so a crash between the steps never loses the
        # job; then drop the reservation and move the job straight back into its queue.
        entry = reservation.entry
        await self.store.add("scheduled", [Scored(now, entry)])
        await self.store.ack(entry.jid, now)
        await self.store.requeue("scheduled", [entry.jid], now)
        self.handed_back += 1

    async def acked(self, reservation: Reservation, now: float) -> None:
        """Give back the job's unit."""
        await self._release(reservation)

    async def failed(
        self, reservation: Reservation, placement: Placement | None, now: float
    ) -> None:
        """Give back the job's unit (a FAIL or an expired reservation)."""
        await self._release(reservation)

    async def _release(self, reservation: Reservation) -> None:
        throttle = self.throttles.get(reservation.entry.queue)
        if throttle is None:
            return
        name = throttle.limiter(reservation.wid)
        if await self.store.limit_release(name, reservation.entry.jid) and self.wake:
            self.wake([throttle.queue])

    async def status(self, wids: Sequence[str], now: float) -> list[dict[str, Any]]:
        """Return each throttle for the web UI: ``queue``, ``kind`` (``concurrency`` or
        ``worker``), ``description``, ``limit``, ``timeout``, ``taken`` and ``free``.

        For per-worker throttles ``taken`` sums the units of the listed worker ids and
        ``free`` is what the busiest of them has left.
        """
        rows = []
        for throttle in self.throttles.values():
            if throttle.per_worker:
                counts = [await self.store.limit_status(throttle.limiter(w), now) for w in wids]
                taken, busiest = sum(counts), max(counts, default=0)
            else:
                taken = busiest = await self.store.limit_status(throttle.limiter(""), now)
            rows.append(
                {
                    "queue": throttle.queue,
                    "kind": "worker" if throttle.per_worker else "concurrency",
                    "description": throttle.description,
                    "limit": throttle.limit,
                    "timeout": throttle.timeout,
                    "taken": taken,
                    "free": max(0, throttle.limit - busiest),
                }
            )
        return rows


def throttles_of(middleware: Iterable[Middleware]) -> ThrottleMiddleware | None:
    """Return the throttle middleware of a manager's chain, if it has one."""
    for item in middleware:
        if isinstance(item, ThrottleMiddleware):
            return item
    return None


async def throttle_status(manager: Manager) -> list[dict[str, Any]]:
    """The web UI's Throttles tab: :meth:`ThrottleMiddleware.status` for a manager's
    throttles over its known worker processes (``[]`` when none are configured)."""
    throttle = throttles_of(manager.middleware)
    if throttle is None:
        return []
    wids = [process.wid for process in await manager.store.processes()]
    return await throttle.status(wids, manager.clock())


# -- the LIMIT verb's rate limiters ---------------------------------------------------------

LIMIT_KINDS: Final[tuple[LimitKind, ...]] = ("concurrent", "bucket", "window", "leaky")
LIMIT_PREFIX: Final = "limit:"
"""Store names of protocol limiters are prefixed, so they never meet a throttle's."""
MAX_WAIT: Final = 30.0
POLL: Final = 0.05
"""Longest pause between two tries of a ``concurrent`` limiter while waiting: a unit may
be released (on any server) long before the earliest hold expires."""


class RateLimiters:
    """Named limiters shared by every worker and server, over the store's primitives.

    Args:
        manager: provides the store and the clock.
    """

    def __init__(self, manager: Manager) -> None:
        self.manager = manager

    async def acquire(
        self,
        name: str,
        kind: LimitKind,
        limit: int,
        period: float,
        holder: str | None = None,
        wait: float = 0.0,
    ) -> LimitResult:
        """Take one unit of limiter ``name``, trying again until ``wait`` seconds passed.

        Waits follow the store's ``retry_after`` hint (never past the deadline, and for
        ``concurrent`` at most :data:`POLL` at a time); when the hint says no unit frees
        up before the deadline, gives up at once. Returns the last attempt's result.
        """
        store, clock = self.manager.store, self.manager.clock
        holder = holder or secrets.token_hex(8)
        deadline = Deadline(min(wait, MAX_WAIT))
        while True:
            result = await store.limit_acquire(
                LIMIT_PREFIX + name, kind, limit, period, holder, clock()
            )
            remaining = deadline.remaining()
            if result.acquired or remaining <= 0:
                return result
            pause = result.retry_after
            if kind == "concurrent":
                pause = min(pause, POLL)
            elif pause > remaining:
                return result
            # A little jitter, so waiters released by one interval do not all collide.
            await asyncio.sleep(deadline.timer(max(pause, 0.001) + random.uniform(0, 0.005)))

    async def release(self, name: str, holder: str) -> bool:
        """Give back ``holder``'s unit of a ``concurrent`` limiter."""
        return await self.manager.store.limit_release(LIMIT_PREFIX + name, holder)

    async def status(self, name: str) -> int:
        """Return how many units of limiter ``name`` count against it now."""
        return await self.manager.store.limit_status(LIMIT_PREFIX + name, self.manager.clock())
