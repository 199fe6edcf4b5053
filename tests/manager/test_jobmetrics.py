"""Job metrics: counts per job type and minute, percentiles, and storage that stays
bounded however many jobs run (on SQLite and on Redis, through the store contract).

The bound (see :mod:`werk.manager.jobmetrics`): at most ``BUCKETS`` (480) one-minute
buckets are kept, each with at most ``MAX_TYPES + 1`` job types of at most
``4 + len(BOUNDS_MS)`` counters. The drain tests run a controlled clock through more than
8 hours and check that nothing older than the window is left.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from werk.manager.jobmetrics import (
    BOUNDS_MS,
    BUCKET,
    BUCKETS,
    MAX_TYPES,
    OTHER,
    JobMetrics,
    bucket_key,
)
from werk.manager.manager import Manager
from werk.manager.retry import FailureReport
from werk.storage import open_store
from werk.storage.base import Store

START = 1_700_000_000.0 - 1_700_000_000.0 % BUCKET
TYPES = ("Report", "Mail", "Resize")
MAX_COUNTERS = (MAX_TYPES + 1) * (4 + len(BOUNDS_MS))


class Clock:
    """A controlled wall clock."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path, backend: str | None) -> AsyncIterator[Store]:
    """An open store on SQLite or on a Redis key prefix of its own (no server around it:
    the tests' clock is in the past, where a server's reaper would expire everything)."""
    opened = open_store(backend or str(tmp_path / "data"))
    await opened.open()
    yield opened
    await opened.close()


async def drain(store: Store, jobs: int, step: float) -> tuple[JobMetrics, Clock, Counter[int]]:
    """Push ``jobs`` jobs and run each: fetch, ``step`` seconds, then ACK (every 10th
    fails with ``retry: 0``, so it is discarded). Return the metrics, the clock and the
    executions per bucket."""
    clock = Clock(START)
    metrics = JobMetrics(store, clock)
    manager = Manager(store, clock=clock, middleware=[metrics])
    ran: Counter[int] = Counter()
    for first in range(0, jobs, 1000):
        batch = [
            {"jid": f"job-{i:08d}", "jobtype": TYPES[i % 3], "args": [], "queue": "q", "retry": 0}
            for i in range(first, min(jobs, first + 1000))
        ]
        assert await manager.push_bulk(batch) == {}
        for _ in batch:
            body = await manager.fetch(["q"], "w", timeout=0)
            assert body is not None
            jid = json.loads(body)["jid"]
            clock.now += step
            if int(jid[4:]) % 10 == 9:
                await manager.fail(jid, FailureReport("E", "m", []))
            else:
                await manager.ack(jid)
            ran[int(clock.now // BUCKET)] += 1
    return metrics, clock, ran


async def check_bound(store: Store, metrics: JobMetrics, clock: Clock, ran: Counter[int]) -> None:
    """Every bucket from the start on: none older than 8 hours left, none too big, and the
    8-hour window counts exactly the jobs that ran in it."""
    rows, starts = await metrics.read(8)
    current = int(clock.now // BUCKET)
    kept = 0
    for bucket in range(int(START // BUCKET) - 1, current + 2):
        counts = await store.add_counts(bucket_key(bucket), {})
        if counts:
            kept += 1
            assert bucket > current - BUCKETS, f"bucket {bucket} outlived the window"
            assert len(counts) <= MAX_COUNTERS
    assert kept <= BUCKETS
    window = sum(n for bucket, n in ran.items() if bucket > current - BUCKETS)
    assert sum(m.executions for m in rows) == window
    assert {m.jobtype for m in rows} == set(TYPES)
    failures = sum(m.failures for m in rows)
    assert window // 10 - 2 <= failures <= window // 10 + 2
    assert len(starts) == BUCKETS and starts[-1] == current * BUCKET


async def test_drain_keeps_storage_bounded(store: Store) -> None:
    # 1,000 jobs, 60 s each: 16.7 hours, so the first 8.7 hours must have been swept
    metrics, clock, ran = await drain(store, 1_000, 60.0)
    await check_bound(store, metrics, clock, ran)


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_drain_of_100000_jobs_keeps_storage_bounded(store: Store) -> None:
    # 100,000 jobs, 1 s each: 27.8 hours of metrics written, at most 8 hours kept
    metrics, clock, ran = await drain(store, 100_000, 1.0)
    await check_bound(store, metrics, clock, ran)


async def test_job_types_past_the_cap_count_as_other(store: Store) -> None:
    clock = Clock(START)
    metrics = JobMetrics(store, clock)
    manager = Manager(store, clock=clock, middleware=[metrics])
    jobs = [
        {"jid": f"type-{i:06d}", "jobtype": f"Type{i:03d}", "args": [], "queue": "t"}
        for i in range(MAX_TYPES + 10)
    ]
    assert await manager.push_bulk(jobs) == {}
    for job in jobs:
        assert await manager.fetch(["t"], "w", timeout=0) is not None
        await manager.ack(job["jid"])
    rows, _ = await metrics.read(1)
    assert len(rows) == MAX_TYPES + 1
    assert next(m for m in rows if m.jobtype == OTHER).executions == 10


async def test_percentiles_follow_the_run_times(store: Store) -> None:
    # 90 runs of 100 ms and 10 of 2 s: p50 is about 100 ms, p95 about 2 s
    clock = Clock(START)
    metrics = JobMetrics(store, clock)
    manager = Manager(store, clock=clock, middleware=[metrics])
    for i in range(100):
        await manager.push({"jid": f"time-{i:06d}", "jobtype": "T", "args": [], "queue": "p"})
        assert await manager.fetch(["p"], "w", timeout=0) is not None
        clock.now += 2.0 if i % 10 == 0 else 0.1
        await manager.ack(f"time-{i:06d}")
    (row,), _ = await metrics.read(1)
    assert row.executions == 100
    assert 100 / 1.5 <= row.percentile(0.5) <= 100 * 1.5
    assert 2000 / 1.5 <= row.percentile(0.95) <= 2000 * 1.5
    assert row.mean_ms == pytest.approx((90 * 100 + 10 * 2000) / 100, rel=0.01)
