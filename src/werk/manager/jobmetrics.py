"""Job metrics per job type, as Sidekiq 7's Metrics tab: executions, failures, run time.

A middleware counts every ACK and FAIL (and expired reservation, a failure) by job type
and by one-minute bucket, with the time from FETCH to ACK/FAIL in a log-scale histogram
from which p50 and p95 are read. Nothing but the store's counters is used
(:meth:`~werk.storage.base.Store.add_counts` on ``jobmetrics:<minute>``), so every
backend keeps them, and servers sharing a store add into the same buckets.

Counts are gathered in memory and added to the store at most every
:data:`FLUSH_EVERY` seconds (one ``add_counts`` per minute touched), so an ACK costs no
store round trip. Storage is bounded whatever the load: at most :data:`BUCKETS` buckets
(8 hours of minutes; older ones are deleted as new ones are written), each holding at most
:data:`MAX_TYPES` job types plus ``(other)``, each type at most ``3 + len(BOUNDS_MS) + 1``
counters. That is 480 × 51 × 44 ≈ 1.08 million counters at the very worst (51 job types in
every minute, each with run times spread over all 41 histogram buckets); a server running
a handful of job types keeps a few thousand.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from werk.manager.middleware import Middleware
from werk.storage.base import Placement, Reservation, Store

log = logging.getLogger("werk.metrics")

KEY: Final = "jobmetrics:"
SWEPT_KEY: Final = "jobmetrics-swept"
BUCKET: Final = 60
"""Seconds per bucket."""
BUCKETS: Final = 8 * 60
"""Buckets kept: 8 hours."""
MAX_TYPES: Final = 50
"""Job types counted per bucket; more are counted together as :data:`OTHER`."""
OTHER: Final = "(other)"
FLUSH_EVERY: Final = 5.0
"""Seconds between two writes of the gathered counts to the store."""
MAX_SWEEP: Final = 600
"""Old buckets deleted per write at most (a long downtime is swept over several writes)."""
BOUNDS_MS: Final = tuple(round(1.5**i, 3) for i in range(40))
"""Upper bounds (exclusive, milliseconds) of the run-time histogram: 1 ms to ~2 h, x1.5."""
HOURS: Final = (1, 2, 4, 8)
NAME_CACHE: Final = 1000


def bucket_key(bucket: int) -> str:
    """Return the store key of the bucket starting at ``bucket * BUCKET`` seconds."""
    return f"{KEY}{bucket}"


def _types_of(counts: dict[str, int]) -> set[str]:
    return {name.rpartition("|")[0] for name in counts}


@dataclass
class TypeMetrics:
    """One job type's numbers over a window: totals, a histogram, and a series per bucket."""

    jobtype: str
    executions: int = 0
    failures: int = 0
    total_us: int = 0
    histogram: dict[int, int] = field(default_factory=dict)
    series: list[tuple[int, int, int]] = field(default_factory=list)
    """``(bucket start, executions, failures)`` for every bucket where the type ran."""

    @property
    def mean_ms(self) -> float:
        """The mean run time in milliseconds (0 without executions)."""
        return self.total_us / 1000 / self.executions if self.executions else 0.0

    def percentile(self, fraction: float) -> float:
        """Return the run time (ms) below which ``fraction`` of executions fell.

        Interpolated geometrically inside the histogram bucket, so it is within the
        bucket's x1.5 span of the truth.
        """
        count = sum(self.histogram.values())
        if not count:
            return 0.0
        rank = fraction * count
        seen = 0
        for index in sorted(self.histogram):
            n = self.histogram[index]
            if seen + n >= rank:
                low = BOUNDS_MS[index - 1] if index > 0 else 0.0
                high = BOUNDS_MS[index] if index < len(BOUNDS_MS) else BOUNDS_MS[-1] * 1.5
                share = (rank - seen) / n
                if low <= 0:
                    return high * share
                return float(low * math.pow(high / low, share))
            seen += n
        return BOUNDS_MS[-1]


class JobMetrics(Middleware):
    """Counts executions, failures and run times per job type; reads them back.

    Args:
        store: the server's store.
        clock: Unix seconds, for the flush timer (tests pass a controlled one).
    """

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._pending: dict[int, dict[str, int]] = {}
        self._known: dict[int, set[str]] = {}
        self._flushed_at = clock()
        self._swept: int | None = None
        self._names: dict[str, list[str]] = {}
        """The newest bucket known to be deleted (another server may be further on)."""

    async def acked(self, reservation: Reservation, now: float) -> None:
        """Count a successful execution."""
        await self._count(reservation, now, failed=False)

    async def failed(
        self, reservation: Reservation, placement: Placement | None, now: float
    ) -> None:
        """Count a failed execution (a FAIL or an expired reservation)."""
        await self._count(reservation, now, failed=True)

    async def _count(self, reservation: Reservation, now: float, *, failed: bool) -> None:
        bucket = int(now // BUCKET)
        counts = self._pending.get(bucket)
        if counts is None:
            counts = self._pending[bucket] = {}
        known = self._known.setdefault(bucket, set())
        jobtype = reservation.entry.jobtype
        if jobtype not in known:
            if len(known) >= MAX_TYPES:
                jobtype = OTHER
            known.add(jobtype)
        names = self._names.get(jobtype) or self._name(jobtype)
        us = max(0, round((now - reservation.reserved_at) * 1_000_000))
        for name, delta in (
            (names[0], 1),
            (names[1], int(failed)),
            (names[2], us),
            (names[3 + bisect.bisect_right(BOUNDS_MS, us / 1000)], 1),
        ):
            if delta:
                counts[name] = counts.get(name, 0) + delta
        if now - self._flushed_at >= FLUSH_EVERY:
            await self.flush(now)

    def _name(self, jobtype: str) -> list[str]:
        # Counter names per job type, made once: "<type>|n", "|f", "|us", "|h0".."|h40".
        if len(self._names) > NAME_CACHE:
            self._names.clear()
        base = jobtype.replace("|", "/") + "|"
        names = [base + "n", base + "f", base + "us"]
        names += [f"{base}h{i}" for i in range(len(BOUNDS_MS) + 1)]
        self._names[jobtype] = names
        return names

    async def flush(self, now: float | None = None) -> None:
        """Add the gathered counts to the store and delete buckets past the 8 hours.

        A store error is logged and the counts of this flush are dropped (metrics never
        fail an ACK).
        """
        now = self.clock() if now is None else now
        self._flushed_at = now
        pending, self._pending = self._pending, {}
        current = int(now // BUCKET)
        try:
            for bucket, deltas in sorted(pending.items()):
                if bucket <= current - BUCKETS:
                    continue
                after = await self.store.add_counts(bucket_key(bucket), deltas)
                self._known[bucket] = self._known.get(bucket, set()) | _types_of(after)
            await self._sweep(current, now)
        except Exception:
            log.exception("job metrics: writing counts failed")
        self._known = {b: t for b, t in self._known.items() if b > current - 2}

    async def _sweep(self, current: int, now: float) -> None:
        newest_old = current - BUCKETS
        if self._swept is None:
            raw = await self.store.get_record(SWEPT_KEY, now)
            self._swept = int(raw) if raw else newest_old
            if raw is None:
                await self.store.put_record(SWEPT_KEY, str(newest_old).encode(), None, now)
        if self._swept >= newest_old:
            return
        upto = min(newest_old, self._swept + MAX_SWEEP)
        for bucket in range(self._swept + 1, upto + 1):
            await self.store.delete_record(bucket_key(bucket))
        await self.store.put_record(SWEPT_KEY, str(upto).encode(), None, now)
        self._swept = upto

    async def read(self, hours: int) -> tuple[list[TypeMetrics], list[int]]:
        """Return every job type's metrics over the last ``hours`` (1 to 8), most
        executions first, and the bucket start times (Unix seconds) of the window.

        What this server gathered and has not written yet is written first.
        """
        await self.flush()
        current = int(self.clock() // BUCKET)
        span = max(1, min(BUCKETS // 60, hours)) * 60
        buckets = list(range(current - span + 1, current + 1))
        found: dict[str, TypeMetrics] = {}
        for bucket in buckets:
            counts = await self.store.add_counts(bucket_key(bucket), {})
            for jobtype, values in _split(counts).items():
                metrics = found.setdefault(jobtype, TypeMetrics(jobtype))
                _merge(metrics, values)
                metrics.series.append((bucket * BUCKET, values.get("n", 0), values.get("f", 0)))
        ranked = sorted(found.values(), key=lambda m: (-m.executions, m.jobtype))
        return ranked, [b * BUCKET for b in buckets]


def _split(counts: dict[str, int]) -> dict[str, dict[str, int]]:
    by_type: dict[str, dict[str, int]] = {}
    for name, value in counts.items():
        jobtype, _, counter = name.rpartition("|")
        by_type.setdefault(jobtype, {})[counter] = value
    return by_type


def _merge(metrics: TypeMetrics, values: dict[str, int]) -> None:
    metrics.executions += values.get("n", 0)
    metrics.failures += values.get("f", 0)
    metrics.total_us += values.get("us", 0)
    for counter, value in values.items():
        if counter.startswith("h") and counter[1:].isdigit():
            index = int(counter[1:])
            metrics.histogram[index] = metrics.histogram.get(index, 0) + value


def series_json(metrics: list[TypeMetrics], starts: list[int]) -> str:
    """Return the chart data: ``{"x": [...], "types": {jobtype: [executions, ...]}}``."""
    index = {start: i for i, start in enumerate(starts)}
    types: dict[str, list[int]] = {}
    for m in metrics[:10]:
        values = [0] * len(starts)
        for start, executions, _failures in m.series:
            if start in index:
                values[index[start]] = executions
        types[m.jobtype] = values
    return json.dumps({"x": starts, "types": types}, separators=(",", ":"))


def metrics_of(middleware: list[Middleware]) -> JobMetrics | None:
    """Return the job metrics middleware of a chain, if it has one."""
    return next((m for m in middleware if isinstance(m, JobMetrics)), None)
