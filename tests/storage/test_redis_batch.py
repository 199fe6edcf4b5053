"""The Redis store's group commit (werk.storage.redis.batch): operations started in the same
event-loop turn share one script call, and each keeps the meaning it has alone."""

from __future__ import annotations

import asyncio

import pytest

from tests.storage.test_redis import StoreFactory, entry, redis_url, stores
from werk.storage.base import Placement, Reservation

__all__ = ["redis_url", "stores"]
pytestmark = pytest.mark.redis


async def test_one_turn_of_fetches_and_acks_is_one_round_trip(stores: StoreFactory) -> None:
    # Given 50 queued jobs
    store = await stores()
    await store.enqueue([entry(f"j{i:03d}") for i in range(50)], 10.0)
    before = store._batcher.batches
    # When 50 FETCHes start in one turn, then 50 ACKs
    fetched = await asyncio.gather(*(store.fetch(["default"], 11.0, f"w{i}") for i in range(50)))
    acked = await asyncio.gather(*(store.ack(r.entry.jid, 12.0) for r in fetched if r is not None))
    # Then each took one round trip, in FIFO order with each FETCH's own wid and time
    assert store._batcher.batches - before == 2
    assert [r.entry.jid for r in fetched if r] == [f"j{i:03d}" for i in range(50)]
    assert [(r.wid, r.reserved_at, r.expires_at) for r in fetched if r] == [
        (f"w{i}", 11.0, 71.0) for i in range(50)
    ]
    assert all(isinstance(r, Reservation) for r in acked)
    assert (await store.counters()).processed == 50
    assert await store.working_size() == 0


async def test_the_same_jid_acked_twice_in_one_batch_counts_once(stores: StoreFactory) -> None:
    store = await stores()
    await store.enqueue([entry("x")], 1.0)
    assert await store.fetch(["default"], 2.0, "w") is not None
    first, second = await asyncio.gather(store.ack("x", 3.0), store.ack("x", 3.0))
    assert first is not None and first.entry.jid == "x" and second is None
    assert (await store.counters()).processed == 1


async def test_a_mixed_batch_keeps_every_rule(stores: StoreFactory) -> None:
    # Given a paused queue with a job, another queue with two, and one reserved job
    store = await stores()
    await store.enqueue([entry("p1", queue="paused"), entry("r1", queue="ready")], 1.0)
    await store.enqueue([entry("r2", queue="ready"), entry("held")], 1.0)
    await store.pause(["paused"])
    assert (held := await store.fetch(["default"], 2.0, "w0")) is not None
    retry = Placement("retries", 50.0, held.entry)
    # When pushes, a FAIL, and FETCHes over different queue lists run in one turn
    results = await asyncio.gather(
        store.enqueue([entry("new", queue="fresh", priority=9)], 3.0),
        store.fail("held", 3.0, retry),
        store.fail("nobody", 3.0, None),
        store.fetch(["paused", "ready"], 3.0, "w1"),
        store.fetch(["fresh", "ready"], 3.0, "w2"),
        store.fetch(["paused", "ready"], 3.0, "w3"),
        store.fetch(["paused", "ready"], 3.0, "w4"),
        store.fetch(["paused"], 3.0, "w5"),
    )
    # Then the FAIL placed its job, the unknown one failed, paused jobs stayed, and the
    # FETCHes got jobs in queue order (the push of the same turn included)
    assert results[1] is True and results[2] is False
    jobs = [r.entry.jid if isinstance(r, Reservation) else r for r in results[3:]]
    assert jobs == ["r1", "new", "r2", None, None]
    assert (await store.set_get("retries", "held")) is not None
    assert await store.counters() == type(await store.counters())(1, 1)
    assert (await store.queue_sizes())["paused"] == 1


async def test_pushes_in_one_turn_keep_fifo_and_priority(stores: StoreFactory) -> None:
    store = await stores()
    await asyncio.gather(
        store.enqueue([entry("a", priority=5), entry("b", priority=5)], 1.0),
        store.enqueue([entry("c", priority=8)], 1.0),
        store.enqueue([entry("d", priority=5)], 1.0),
    )
    order = [await store.fetch(["default"], 2.0, "w") for _ in range(4)]
    assert [r.entry.jid for r in order if r] == ["c", "a", "b", "d"]


async def test_the_working_zset_stays_a_skiplist_and_counts_only_jobs(
    stores: StoreFactory,
) -> None:
    store = await stores()
    await store.enqueue([entry("a"), entry("b")], 1.0)
    assert await store.fetch(["default"], 2.0, "w") is not None
    encoding = await store._redis.object("encoding", store.keys.working)
    assert encoding == b"skiplist"
    assert await store.working_size() == 1
    assert [r.entry.jid for r in await store.working(0, 10)] == ["a"]
    assert await store.ack("a", 3.0) is not None
    assert await store.working_size() == 0 and await store.working(0, 10) == []
