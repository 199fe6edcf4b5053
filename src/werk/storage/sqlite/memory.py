"""In-memory indexes of the SQLite store, touched only on the event loop thread.

The store is the only writer of its database (the directory lock ensures it), so it can
keep the fetch order of every queue, the reservations and the counters in memory and ask
SQLite only for bodies. Queues hold row ids, never bodies: per queue one ``deque`` per
priority, so push and pop are O(1) at any depth.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence

from werk.storage.base import DayCount, Entry, Reservation

LOWEST, HIGHEST = 1, 9
Lanes = list[deque[int]]


def _lane(priority: int) -> int:
    return min(max(priority, LOWEST), HIGHEST)


class QueueIndex:
    """Fetch order of every known queue: higher priority first, FIFO within one."""

    def __init__(self) -> None:
        self._lanes: dict[str, Lanes] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._lanes

    def names(self) -> list[str]:
        """Return every known queue name."""
        return list(self._lanes)

    def add(self, name: str) -> Lanes:
        """Remember a queue (empty) and return its lanes."""
        lanes = self._lanes.get(name)
        if lanes is None:
            lanes = self._lanes[name] = [deque() for _ in range(HIGHEST + 1)]
        return lanes

    def push(self, name: str, priority: int, job_id: int) -> None:
        """Append a job at the end of its priority."""
        self.add(name)[_lane(priority)].append(job_id)

    def pop(self, name: str) -> tuple[int, int] | None:
        """Take the next job of a queue: ``(job_id, lane)`` or ``None`` when empty."""
        lanes = self._lanes.get(name)
        if lanes is None:
            return None
        for lane in range(HIGHEST, LOWEST - 1, -1):
            if lanes[lane]:
                return lanes[lane].popleft(), lane
        return None

    def unpop(self, name: str, lane: int, job_id: int) -> None:
        """Put a popped job back at the front of its lane."""
        self.add(name)[lane].appendleft(job_id)

    def size(self, name: str) -> int:
        """Return how many jobs wait in a queue."""
        lanes = self._lanes.get(name)
        return 0 if lanes is None else sum(len(lane) for lane in lanes)

    def order(self, name: str) -> Iterator[int]:
        """Iterate a queue's job ids in fetch order."""
        lanes = self._lanes.get(name, [])
        return itertools.chain.from_iterable(reversed(lanes))

    def heads(self, name: str) -> list[int]:
        """Return the first job id of every non-empty lane (the oldest of each priority)."""
        return [lane[0] for lane in self._lanes.get(name, []) if lane]

    def remove(self, name: str, job_ids: set[int]) -> list[tuple[int, int]]:
        """Remove the listed ids still queued in ``name``; return ``(lane, id)`` pairs."""
        removed: list[tuple[int, int]] = []
        for number, lane in enumerate(self._lanes.get(name, [])):
            if any(job_id in job_ids for job_id in lane):
                kept = deque(job_id for job_id in lane if job_id not in job_ids)
                removed.extend((number, job_id) for job_id in lane if job_id in job_ids)
                lane.clear()
                lane.extend(kept)
        return removed

    def restore(self, name: str, pairs: Iterable[tuple[int, int]]) -> None:
        """Put removed ``(lane, id)`` pairs back in front, in their original order."""
        lanes = self.add(name)
        for lane, job_id in reversed(list(pairs)):
            lanes[lane].appendleft(job_id)

    def drop(self, name: str) -> list[tuple[int, int]]:
        """Forget a queue; return its ``(lane, id)`` pairs in lane order."""
        lanes = self._lanes.pop(name, [])
        return [(number, job_id) for number, lane in enumerate(lanes) for job_id in lane]


class BodyCache:
    """Pushed entries kept until fetched (with their enqueue time), so that a FETCH skips
    the SELECT: at most ``count`` entries, and bodies of ``size`` bytes plus the last one
    kept (:meth:`put` with ``force`` aside: a batch :meth:`fits` checked first)."""

    def __init__(self, count: int, size: int) -> None:
        self._entries: dict[int, tuple[Entry, float]] = {}
        self._count = count
        self._size = size
        self.held = 0
        """Bytes of bodies held."""

    def __len__(self) -> int:
        return len(self._entries)

    def fits(self, entries: Sequence[Entry]) -> bool:
        """Whether every one of ``entries`` would fit now."""
        return (
            len(self._entries) + len(entries) <= self._count
            and self.held + sum(len(entry.body) for entry in entries) <= self._size
        )

    def put(self, job_id: int, entry: Entry, enqueued_at: float, force: bool = False) -> None:
        """Keep ``entry`` unless the cache is full (``force``: keep it all the same)."""
        if force or (len(self._entries) < self._count and self.held < self._size):
            self._entries[job_id] = (entry, enqueued_at)
            self.held += len(entry.body)

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()
        self.held = 0

    def pop(self, job_id: int) -> tuple[Entry, float] | None:
        """Take out and return the entry of ``job_id`` with its enqueue time, if kept."""
        cached = self._entries.pop(job_id, None)
        if cached is not None:
            self.held -= len(cached[0].body)
        return cached


class Reservations:
    """Reservations by jid, with a heap by expiry (stale heap entries are skipped)."""

    def __init__(self) -> None:
        self._by_jid: dict[str, tuple[Reservation, int]] = {}
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._by_jid)

    def get(self, jid: str) -> Reservation | None:
        """Return the reservation of ``jid``."""
        held = self._by_jid.get(jid)
        return None if held is None else held[0]

    def put(self, reservation: Reservation, job_id: int) -> tuple[Reservation, int] | None:
        """Hold a reservation; return the one it replaced for the same jid, if any."""
        jid = reservation.entry.jid
        previous = self._by_jid.get(jid)
        self._by_jid[jid] = (reservation, job_id)
        heapq.heappush(self._heap, (reservation.expires_at, jid))
        if len(self._heap) > 2 * len(self._by_jid) + 1024:
            self._heap = [(r.expires_at, j) for j, (r, _) in self._by_jid.items()]
            heapq.heapify(self._heap)
        return previous

    def pop(self, jid: str) -> tuple[Reservation, int] | None:
        """Release a reservation: return it with its job id, or ``None``."""
        return self._by_jid.pop(jid, None)

    def due(self, now: float, limit: int) -> list[Reservation]:
        """Return up to ``limit`` reservations expiring at or before ``now``, soonest first."""
        found: list[Reservation] = []
        keep: list[tuple[float, str]] = []
        heap = self._heap
        while heap and len(found) < limit and heap[0][0] <= now:
            expires_at, jid = heapq.heappop(heap)
            held = self._by_jid.get(jid)
            if held is None or held[0].expires_at != expires_at:
                continue  # released or extended since: a stale entry
            if keep and keep[-1] == (expires_at, jid):
                continue
            found.append(held[0])
            keep.append((expires_at, jid))
        for item in keep:
            heapq.heappush(heap, item)
        return found

    def ordered(self) -> list[Reservation]:
        """Return every reservation ordered by expiry."""
        return sorted((r for r, _ in self._by_jid.values()), key=lambda r: r.expires_at)

    def items(self) -> list[tuple[Reservation, int]]:
        """Return every ``(reservation, job_id)``."""
        return list(self._by_jid.values())


class Tally:
    """Processed and failure counters, lifetime and per UTC day."""

    def __init__(self) -> None:
        self.processed = 0
        self.failures = 0
        self.days: dict[str, list[int]] = {}
        self._day = ""
        self._day_start = 0.0

    def day(self, now: float) -> str:
        """Return ``now``'s UTC day as ``YYYY-MM-DD`` (cached for the current day)."""
        if not self._day_start <= now < self._day_start + 86400:
            self._day = time.strftime("%Y-%m-%d", time.gmtime(now))
            self._day_start = now - now % 86400
        return self._day

    def add(self, day: str, processed: int, failures: int) -> None:
        """Count jobs for a day and for the lifetime."""
        self.processed += processed
        self.failures += failures
        pair = self.days.setdefault(day, [0, 0])
        pair[0] += processed
        pair[1] += failures

    def history(self, days: Iterable[str]) -> list[DayCount]:
        """Return the counts of the listed days, zero where none."""
        return [DayCount(d, *self.days.get(d, (0, 0))) for d in days]
