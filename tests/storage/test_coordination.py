"""The coordination part of the storage contract: locks, records, counters and limiters.

Run unchanged against every backend (the ``store`` fixture). Times are explicit ``now``
values, never sleeps. Tests that need two servers on one backend run on Redis and
PostgreSQL: the SQLite store is single-server by design (its directory lock refuses a
second one).
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

import pytest

from tests.storage.conftest import Backend, Reopen
from werk.storage.base import LimitKind, LimitResult, Process, Store
from werk.storage.sqlite import SqliteStore, schema

T0 = 1_700_000_040.0  # a multiple of 60 (and of 10): bucket intervals start here
KINDS: tuple[LimitKind, ...] = ("concurrent", "bucket", "window", "leaky")


SHARED = pytest.mark.parametrize("backend", ["redis", "postgres"], indirect=True)
"""For tests of several servers on one store: the SQLite store is single-server by design."""

REDIS_ONLY = pytest.mark.parametrize("backend", ["redis"], indirect=True)


async def two_servers(backend: Backend) -> tuple[Store, Store]:
    """Two stores on one backend's data (not SQLite, which refuses a second server)."""
    assert backend.name in ("redis", "postgres")
    return await backend.open(), await backend.open()


# -- locks ----------------------------------------------------------------------------


async def test_claim_free_lock_then_others_are_refused(store: Store) -> None:
    assert await store.claim("unique:a", "o1", 10, T0)
    assert not await store.claim("unique:a", "o2", 10, T0 + 5)
    assert not await store.claim("unique:a", "o2", 10, T0 + 9.999)
    assert await store.claim("unique:b", "o2", 10, T0)  # another key is independent


async def test_claim_succeeds_once_expired(store: Store) -> None:
    assert await store.claim("k", "o1", 10, T0)
    # expiry is at T0 + 10: at that instant the lock is free
    assert await store.claim("k", "o2", 10, T0 + 10)
    assert not await store.claim("k", "o1", 10, T0 + 11)


async def test_same_owner_extends_the_lock(store: Store) -> None:
    assert await store.claim("k", "o1", 10, T0)
    assert await store.claim("k", "o1", 10, T0 + 8)  # now held until T0 + 18
    assert not await store.claim("k", "o2", 10, T0 + 15)
    assert await store.claim("k", "o2", 10, T0 + 18)


async def test_release_only_by_its_owner_or_anyone(store: Store) -> None:
    assert not await store.release("k", "o1")  # nothing held
    await store.claim("k", "o1", 10, T0)
    assert not await store.release("k", "o2")
    assert not await store.claim("k", "o2", 10, T0 + 1)
    assert await store.release("k", "o1")
    assert not await store.release("k", "o1")
    assert await store.claim("k", "o2", 10, T0 + 1)
    assert await store.release("k", None)
    assert await store.claim("k", "o3", 10, T0 + 1)


async def test_concurrent_claims_have_exactly_one_winner(store: Store) -> None:
    won = await asyncio.gather(*(store.claim("cron:x", f"o{i}", 60, T0) for i in range(50)))
    assert sum(won) == 1


@SHARED
async def test_claims_from_two_servers_have_exactly_one_winner(backend: Backend) -> None:
    a, b = await two_servers(backend)
    for round_ in range(5):
        key = f"cron:tick:{round_}"
        won = await asyncio.gather(
            *(
                s.claim(key, f"{name}{i}", 60, T0)
                for i in range(25)
                for name, s in (("a", a), ("b", b))
            )
        )
        assert sum(won) == 1


# -- records and counters -----------------------------------------------------------------


async def test_put_get_replace_delete_record(store: Store) -> None:
    assert await store.get_record("batch:1", T0) is None
    await store.put_record("batch:1", b'{"n": 1}', None, T0)
    assert await store.get_record("batch:1", T0 + 10**6) == b'{"n": 1}'
    await store.put_record("batch:1", b"\x00\xffbinary", None, T0)
    assert await store.get_record("batch:1", T0) == b"\x00\xffbinary"
    await store.delete_record("batch:1")
    assert await store.get_record("batch:1", T0) is None
    await store.delete_record("batch:1")  # deleting nothing is fine


async def test_record_ttl(store: Store) -> None:
    await store.put_record("track:j1", b"v", 30, T0)
    assert await store.get_record("track:j1", T0 + 29.5) == b"v"
    assert await store.get_record("track:j1", T0 + 30) is None  # vanishes at now + ttl
    assert await store.records("track:", T0 + 30) == []
    # replacing with ttl=None makes it permanent again
    await store.put_record("track:j1", b"w", None, T0 + 40)
    assert await store.get_record("track:j1", T0 + 10**6) == b"w"


async def test_records_by_prefix_in_key_order(store: Store) -> None:
    keys = ["job:b", "job:a:1", "job:a", "jo", "job", "joc:1", "job;", "job:é", "job:\U0001f600"]
    for i, key in enumerate(keys):
        await store.put_record(key, f"v{i}".encode(), None, T0)
    await store.put_record("job:expired", b"x", 5, T0)
    found = await store.records("job:", T0 + 5)
    assert [k for k, _ in found] == ["job:a", "job:a:1", "job:b", "job:é", "job:\U0001f600"]
    assert dict(found)["job:b"] == b"v0"
    assert [k for k, _ in await store.records("", T0 + 5)] == sorted(keys)
    assert await store.records("nothing", T0) == []


async def test_add_counts_reads_and_adds(store: Store) -> None:
    assert await store.add_counts("batch:1", {}) == {}
    assert await store.add_counts("batch:1", {"pending": 3}) == {"pending": 3}
    after = await store.add_counts("batch:1", {"pending": -1, "succeeded": 1})
    assert after == {"pending": 2, "succeeded": 1}
    assert await store.add_counts("batch:1", {}) == {"pending": 2, "succeeded": 1}
    assert await store.add_counts("batch:2", {"pending": 2**40}) == {"pending": 2**40}


async def test_add_counts_is_atomic_under_concurrency(store: Store) -> None:
    results = await asyncio.gather(
        *(store.add_counts("batch:1", {"done": 1, "left": -1}) for _ in range(50))
    )
    # every caller saw a distinct intermediate state, and the sums are exact
    assert sorted(r["done"] for r in results) == list(range(1, 51))
    assert await store.add_counts("batch:1", {}) == {"done": 50, "left": -50}


async def test_delete_record_removes_its_counters(store: Store) -> None:
    await store.put_record("batch:1", b"meta", None, T0)
    await store.add_counts("batch:1", {"pending": 5})
    await store.add_counts("batch:2", {"pending": 1})
    await store.delete_record("batch:1")
    assert await store.add_counts("batch:1", {}) == {}
    assert await store.add_counts("batch:2", {}) == {"pending": 1}
    # counters without a record are deleted with delete_record too
    await store.delete_record("batch:2")
    assert await store.add_counts("batch:2", {}) == {}


async def test_counters_outlive_an_expired_record(store: Store) -> None:
    # The contract: counters live until delete_record, whatever the record's ttl.
    await store.put_record("batch:1", b"meta", 10, T0)
    await store.add_counts("batch:1", {"n": 1})
    await store.put_record("other", b"x", None, T0 + 20)  # may purge expired records
    assert await store.get_record("batch:1", T0 + 20) is None
    assert await store.add_counts("batch:1", {}) == {"n": 1}


# -- limiters -----------------------------------------------------------------------------


async def acquire(
    store: Store, kind: LimitKind, limit: int, period: float, at: float, holder: str = "h"
) -> LimitResult:
    """Acquire the limiter named after its kind."""
    return await store.limit_acquire(f"lim:{kind}", kind, limit, period, holder, at)


async def test_concurrent_never_exceeds_its_limit(store: Store) -> None:
    results = await asyncio.gather(
        *(store.limit_acquire("api", "concurrent", 5, 60, f"h{i}", T0) for i in range(200))
    )
    assert sum(r.acquired for r in results) == 5
    assert max(r.held for r in results) == 5
    refused = [r for r in results if not r.acquired]
    assert all(r.retry_after == 60 and r.held == 5 for r in refused)
    assert await store.limit_status("api", T0) == 5


async def test_concurrent_holders_at_once_stay_within_limit(store: Store) -> None:
    holding, most = 0, 0

    async def worker(i: int) -> int:
        nonlocal holding, most
        runs = 0
        for _ in range(20):
            got = await store.limit_acquire("db", "concurrent", 3, 60, f"w{i}", T0)
            if got.acquired:
                holding += 1
                most = max(most, holding)
                await asyncio.sleep(0)
                holding -= 1
                assert await store.limit_release("db", f"w{i}")
                runs += 1
            await asyncio.sleep(0)
        return runs

    runs = await asyncio.gather(*(worker(i) for i in range(20)))
    assert most <= 3 and sum(runs) > 0
    assert await store.limit_status("db", T0) == 0


async def test_concurrent_reacquire_reclaim_release(store: Store) -> None:
    assert await acquire(store, "concurrent", 2, 30, T0, "a") == LimitResult(True, 0.0, 1)
    assert await acquire(store, "concurrent", 2, 30, T0 + 10, "b") == LimitResult(True, 0.0, 2)
    # the same holder again: success, no second unit (and its hold restarts)
    assert await acquire(store, "concurrent", 2, 30, T0 + 20, "a") == LimitResult(True, 0.0, 2)
    refused = await acquire(store, "concurrent", 2, 30, T0 + 25, "c")
    assert refused == LimitResult(False, 15.0, 2)  # b's hold ends first, at T0 + 40
    # b is reclaimed once its hold timed out
    assert await store.limit_status("lim:concurrent", T0 + 40) == 1
    assert await acquire(store, "concurrent", 2, 30, T0 + 40, "c") == LimitResult(True, 0.0, 2)
    # release frees a unit at once; other kinds and strangers release nothing
    assert not await store.limit_release("lim:concurrent", "nobody")
    assert await store.limit_release("lim:concurrent", "a")
    assert not await store.limit_release("lim:concurrent", "a")
    assert await store.limit_status("lim:concurrent", T0 + 40) == 1
    assert (await acquire(store, "concurrent", 2, 30, T0 + 41, "d")).acquired


async def test_bucket_allows_limit_per_aligned_interval(store: Store) -> None:
    for i in range(3):
        assert await acquire(store, "bucket", 3, 60, T0 + 10 + i) == LimitResult(True, 0.0, i + 1)
    # the interval is [T0, T0 + 60): wait until it ends
    assert await acquire(store, "bucket", 3, 60, T0 + 20) == LimitResult(False, 40.0, 3)
    assert await acquire(store, "bucket", 3, 60, T0 + 59.5) == LimitResult(False, 0.5, 3)
    assert await store.limit_status("lim:bucket", T0 + 59) == 3
    assert await store.limit_status("lim:bucket", T0 + 60) == 0
    assert await acquire(store, "bucket", 3, 60, T0 + 60) == LimitResult(True, 0.0, 1)
    assert await store.limit_status("lim:bucket", T0 + 61) == 1


async def test_bucket_under_concurrency(store: Store) -> None:
    results = await asyncio.gather(*(acquire(store, "bucket", 7, 10, T0 + 1) for _ in range(100)))
    assert sum(r.acquired for r in results) == 7
    assert sorted(r.held for r in results if r.acquired) == list(range(1, 8))


async def test_window_allows_limit_in_any_sliding_window(store: Store) -> None:
    for t in (0, 10, 20):
        assert (await acquire(store, "window", 3, 60, T0 + t)).acquired
    assert await acquire(store, "window", 3, 60, T0 + 30) == LimitResult(False, 30.0, 3)
    assert await store.limit_status("lim:window", T0 + 59) == 3
    # the use at T0 leaves the window at T0 + 60
    assert await store.limit_status("lim:window", T0 + 60) == 2
    assert await acquire(store, "window", 3, 60, T0 + 60) == LimitResult(True, 0.0, 3)
    assert await acquire(store, "window", 3, 60, T0 + 61) == LimitResult(False, 9.0, 3)
    assert (await acquire(store, "window", 3, 60, T0 + 70)).acquired


async def test_window_property_at_random_times(store: Store) -> None:
    rng = random.Random(7)
    times = sorted(T0 + rng.uniform(0, 300) for _ in range(120))
    granted: list[float] = []
    for t in times:
        result = await acquire(store, "window", 5, 30, t)
        in_window = [g for g in granted if g > t - 30]
        # granted exactly when fewer than 5 uses lie in (t - 30, t]
        assert result.acquired == (len(in_window) < 5), t
        if result.acquired:
            granted.append(t)
        else:
            assert result.retry_after == pytest.approx(min(in_window) + 30 - t)
    for t in granted:
        assert len([g for g in granted if t - 30 < g <= t]) <= 5


async def test_leaky_drains_at_limit_per_period(store: Store) -> None:
    # capacity 4, draining 4 / 8 s = 0.5 per second
    for i in range(4):
        assert await acquire(store, "leaky", 4, 8, T0) == LimitResult(True, 0.0, i + 1)
    assert await acquire(store, "leaky", 4, 8, T0) == LimitResult(False, 2.0, 4)
    assert await acquire(store, "leaky", 4, 8, T0 + 1) == LimitResult(False, 1.0, 4)
    assert await acquire(store, "leaky", 4, 8, T0 + 2) == LimitResult(True, 0.0, 4)
    assert await store.limit_status("lim:leaky", T0 + 4) == 3
    assert await store.limit_status("lim:leaky", T0 + 10) == 0
    # an empty bucket takes a burst of 4 again
    burst = [await acquire(store, "leaky", 4, 8, T0 + 10) for _ in range(5)]
    assert [r.acquired for r in burst] == [True] * 4 + [False]


@pytest.mark.parametrize("kind", KINDS)
async def test_waiting_retry_after_succeeds(store: Store, kind: LimitKind) -> None:
    now = T0 + 7
    while (result := await acquire(store, kind, 3, 20, now, f"h{now}")).acquired:
        now += 1
    assert 0 < result.retry_after <= 20
    later = now + result.retry_after
    assert (await acquire(store, kind, 3, 20, later, "late")).acquired


@SHARED
@pytest.mark.parametrize("kind", KINDS)
async def test_limiters_from_two_servers_never_exceed_the_limit(
    backend: Backend, kind: LimitKind
) -> None:
    a, b = await two_servers(backend)
    results = await asyncio.gather(
        *(
            s.limit_acquire("shared", kind, 6, 60, f"{n}{i}", T0)
            for i in range(60)
            for n, s in (("a", a), ("b", b))
        )
    )
    assert sum(r.acquired for r in results) == 6
    assert await a.limit_status("shared", T0) == 6
    assert await b.limit_status("shared", T0) == 6


async def test_limit_status_of_unknown_limiter_is_zero(store: Store) -> None:
    assert await store.limit_status("never", T0) == 0


async def test_limiter_settings_are_checked(store: Store) -> None:
    with pytest.raises(ValueError):
        await store.limit_acquire("x", "bucket", 0, 10, "h", T0)
    with pytest.raises(ValueError):
        await store.limit_acquire("x", "leaky", 3, 0, "h", T0)


async def test_changing_a_limiters_kind_starts_it_afresh(store: Store) -> None:
    for _ in range(2):
        await store.limit_acquire("x", "window", 2, 60, "h", T0)
    assert not (await store.limit_acquire("x", "window", 2, 60, "h", T0)).acquired
    assert await store.limit_acquire("x", "bucket", 2, 60, "h", T0) == LimitResult(True, 0.0, 1)


# -- restarts and flush ----------------------------------------------------------------------


async def fill(store: Store) -> None:
    """Give a store one of everything the coordination methods keep."""
    assert await store.claim("unique:a", "o1", 100, T0)
    await store.put_record("batch:1", b"meta", None, T0)
    await store.put_record("track:1", b"t", 100, T0)
    await store.add_counts("batch:1", {"pending": 4})
    for kind in KINDS:
        for i in range(2):
            assert (await acquire(store, kind, 2, 60, T0, f"h{i}")).acquired


async def test_everything_survives_a_reopen(store: Store, reopen: Reopen) -> None:
    await fill(store)
    store = await reopen()
    assert not await store.claim("unique:a", "o2", 100, T0 + 1)
    assert await store.records("", T0 + 1) == [("batch:1", b"meta"), ("track:1", b"t")]
    assert await store.add_counts("batch:1", {"pending": -1}) == {"pending": 3}
    for kind in KINDS:
        assert await store.limit_status(f"lim:{kind}", T0) == 2, kind
        assert not (await acquire(store, kind, 2, 60, T0 + 1, "new")).acquired, kind
    assert await store.limit_release("lim:concurrent", "h0")


async def test_flush_deletes_locks_records_counters_limiters(store: Store) -> None:
    await fill(store)
    await store.put_process(Process("w1", hostname="box"))
    await store.flush()
    assert await store.claim("unique:a", "o2", 100, T0 + 1)
    assert await store.records("", T0 + 1) == []
    assert await store.get_record("batch:1", T0 + 1) is None
    assert await store.add_counts("batch:1", {}) == {}
    for kind in KINDS:
        assert await store.limit_status(f"lim:{kind}", T0) == 0, kind
        assert (await acquire(store, kind, 2, 60, T0, "new")).acquired, kind
    assert [p.wid for p in await store.processes()] == ["w1"]


@REDIS_ONLY
async def test_flush_leaves_no_coordination_keys_in_redis(backend: Backend) -> None:
    a, _ = await two_servers(backend)
    await fill(a)
    await a.flush()
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url("redis://127.0.0.1:6379/1")
    try:
        left = [k async for k in client.scan_iter(match=f"{backend.prefix}*")]
    finally:
        await client.aclose()
    assert left == []


async def test_sqlite_database_of_schema_1_is_migrated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a database written by a Werk that knew only the first migration
    with monkeypatch.context() as patch:
        patch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
        old = SqliteStore(tmp_path)
        await old.open()
        await old.put_process(Process("w1"))
        await old.close()
    # When this Werk opens it
    store = SqliteStore(tmp_path)
    await store.open()
    try:
        # Then the coordination tables exist and the old data is kept
        assert await store.claim("k", "o", 10, T0)
        assert [p.wid for p in await store.processes()] == ["w1"]
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / schema.DB_NAME) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM migrations ORDER BY name")]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.close()
    assert names[:2] == ["0001_initial", "0002_coordination"] and version >= 2
