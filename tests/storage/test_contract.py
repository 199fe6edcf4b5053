"""The storage contract (werk.storage.base.Store), run unchanged against every backend.

Only what the contract's docstrings promise is checked here, never a backend's internals;
backend-specific behaviour lives in test_sqlite.py and test_redis.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest

from tests.storage.conftest import Reopen
from werk.storage.base import (
    Counters,
    DayCount,
    Entry,
    Placement,
    Process,
    Scored,
    SetFilter,
    Store,
)

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
DAY = "2023-11-14"


def entry(
    jid: str,
    queue: str = "default",
    *,
    priority: int = 5,
    jobtype: str = "Work",
    reserve_for: int = 1800,
    args: list[object] | None = None,
) -> Entry:
    """Build an entry whose body is the job's JSON (without ``enqueued_at``)."""
    body = {"jid": jid, "queue": queue, "jobtype": jobtype, "args": args or [], "priority": 5}
    body["priority"] = priority
    text = json.dumps(body, separators=(",", ":")).encode()
    return Entry(jid, queue, jobtype, priority, reserve_for, text)


async def drain(store: Store, queues: list[str], wid: str = "w1") -> list[str]:
    """Fetch until empty; return the jids in fetch order."""
    jids = []
    while (res := await store.fetch(queues, NOW, wid)) is not None:
        jids.append(res.entry.jid)
    return jids


async def eventually(check: Callable[[], bool], timeout: float = 2.0) -> None:
    """Wait until ``check()`` holds (callbacks may arrive on a later loop turn)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.01)


async def reserve(store: Store, jid: str, now: float = NOW, **kwargs: object) -> None:
    """Enqueue one job and fetch it."""
    await store.enqueue([entry(jid, **kwargs)], now)  # type: ignore[arg-type]
    res = await store.fetch([str(kwargs.get("queue", "default"))], now, "w1")
    assert res is not None and res.entry.jid == jid


# -- queues ----------------------------------------------------------------------------


async def test_fetch_on_empty_returns_none(store: Store) -> None:
    assert await store.fetch(["default", "other"], NOW, "w1") is None
    assert await store.fetch([], NOW, "w1") is None


async def test_fetch_returns_reservation(store: Store) -> None:
    job = entry("a", reserve_for=600)
    await store.enqueue([job], NOW)
    res = await store.fetch(["default"], NOW + 5, "w1")
    assert res is not None
    assert res.entry == job
    assert (res.enqueued_at, res.reserved_at, res.expires_at, res.wid) == (
        NOW,
        NOW + 5,
        NOW + 605,
        "w1",
    )
    assert await store.reservation("a") == res
    assert await store.working_size() == 1
    assert await store.queue_sizes() == {"default": 0}


async def test_priority_beats_a_deep_queue(store: Store) -> None:
    await store.enqueue([entry(f"p5-{i}") for i in range(1000)], NOW)
    await store.enqueue([entry("p9", priority=9)], NOW + 1)
    first = await store.fetch(["default"], NOW, "w1")
    assert first is not None and first.entry.jid == "p9"
    second = await store.fetch(["default"], NOW, "w1")
    assert second is not None and second.entry.jid == "p5-0"


async def test_higher_priority_first_fifo_within(store: Store) -> None:
    order = [("a", 5), ("b", 1), ("c", 9), ("d", 5), ("e", 9), ("f", 1), ("g", 7)]
    for jid, priority in order:
        await store.enqueue([entry(jid, priority=priority)], NOW)
    assert await drain(store, ["default"]) == ["c", "e", "g", "a", "d", "b", "f"]


async def test_fetch_follows_the_queue_list(store: Store) -> None:
    await store.enqueue([entry("a1", "a"), entry("b1", "b"), entry("a2", "a")], NOW)
    assert await drain(store, ["b", "a"]) == ["b1", "a1", "a2"]


async def test_paused_queues_are_skipped(store: Store) -> None:
    await store.enqueue([entry("a1", "a"), entry("b1", "b")], NOW)
    await store.pause(["a"])
    assert await store.paused() == {"a"}
    assert await drain(store, ["a", "b"]) == ["b1"]
    await store.resume(["a"])
    assert await store.paused() == set()
    assert await drain(store, ["a", "b"]) == ["a1"]


async def test_pause_and_resume_all(store: Store) -> None:
    await store.enqueue([entry("a1", "a"), entry("b1", "b")], NOW)
    await store.pause(None)
    assert await store.paused() == {"a", "b"}
    assert await store.fetch(["a", "b"], NOW, "w1") is None
    await store.resume(None)
    assert await store.paused() == set()
    assert sorted(await drain(store, ["a", "b"])) == ["a1", "b1"]


async def test_queue_sizes_include_known_empty_queues(store: Store) -> None:
    assert await store.queue_sizes() == {}
    await store.enqueue([entry("a1", "a"), entry("a2", "a"), entry("b1", "b")], NOW)
    assert await store.queue_sizes() == {"a": 2, "b": 1}
    await drain(store, ["b"])
    assert await store.queue_sizes() == {"a": 2, "b": 0}


async def test_queue_page_in_fetch_order(store: Store) -> None:
    await store.enqueue([entry("a", priority=1), entry("b"), entry("c", priority=9)], NOW)
    await store.enqueue([entry("d")], NOW + 10)
    page = await store.queue_page("default", 0, 10)
    assert [q.entry.jid for q in page] == ["c", "b", "d", "a"]
    assert [q.enqueued_at for q in page] == [NOW, NOW, NOW + 10, NOW]
    assert page[0].entry == entry("c", priority=9)
    assert [q.entry.jid for q in await store.queue_page("default", 1, 2)] == ["b", "d"]
    assert await store.queue_page("default", 4, 10) == []
    assert await store.queue_page("nope", 0, 10) == []


async def test_queue_delete(store: Store) -> None:
    await store.enqueue([entry(j) for j in "abcd"], NOW)
    assert await store.queue_delete("default", ["d", "zz", "b", "d"]) == ["d", "b"]
    assert await store.queue_delete("default", ["b"]) == []
    assert await store.queue_delete("other", ["a"]) == []
    assert await store.queue_sizes() == {"default": 2}
    assert await drain(store, ["default"]) == ["a", "c"]


async def test_oldest_enqueued(store: Store) -> None:
    await store.enqueue([entry("a1", "a")], NOW)
    await store.enqueue([entry("a2", "a", priority=9)], NOW + 50)
    await store.enqueue([entry("b1", "b")], NOW + 7)
    oldest = await store.oldest_enqueued(["a", "b", "empty"])
    assert oldest == {"a": NOW, "b": NOW + 7, "empty": None}


async def test_remove_queues(store: Store) -> None:
    await store.enqueue([entry("a1", "a"), entry("b1", "b"), entry("c1", "c")], NOW)
    await store.pause(["a"])
    await store.remove_queues(["a"])
    assert await store.queue_sizes() == {"b": 1, "c": 1}
    assert await store.paused() == set()
    assert await store.fetch(["a"], NOW, "w1") is None
    await store.remove_queues(None)
    assert await store.queue_sizes() == {}
    assert await store.fetch(["a", "b", "c"], NOW, "w1") is None


async def test_concurrent_fetches_never_share_a_job(store: Store) -> None:
    await store.enqueue([entry(f"j{i}") for i in range(50)], NOW)
    results = await asyncio.gather(*(store.fetch(["default"], NOW, "w") for _ in range(80)))
    jids = [r.entry.jid for r in results if r is not None]
    assert sorted(jids) == sorted(f"j{i}" for i in range(50))


# -- reservations ------------------------------------------------------------------------


async def test_ack_releases_and_counts(store: Store) -> None:
    await reserve(store, "a")
    res = await store.reservation("a")
    assert await store.ack("a", NOW + 1) == res
    assert await store.ack("a", NOW + 1) is None
    assert await store.reservation("a") is None
    assert await store.working_size() == 0
    assert await store.counters() == Counters(processed=1, failures=0)
    assert await store.history([DAY, "2023-11-15"]) == [
        DayCount(DAY, 1, 0),
        DayCount("2023-11-15", 0, 0),
    ]


async def test_fail_places_the_job(store: Store) -> None:
    for jid in ("r", "d", "x"):
        await reserve(store, jid)
    retried = entry("r", args=["retried"])
    assert await store.fail("r", NOW, Placement("retries", NOW + 30, retried))
    assert await store.fail("d", NOW, Placement("dead", NOW + 99, entry("d")))
    assert await store.fail("x", NOW + 86400, None)
    assert await store.set_get("retries", "r") == Scored(NOW + 30, retried)
    assert await store.set_get("dead", "d") == Scored(NOW + 99, entry("d"))
    assert await store.set_size("retries") == 1
    assert await store.set_size("dead") == 1
    assert await store.working_size() == 0
    assert await store.counters() == Counters(processed=3, failures=3)
    assert await store.history([DAY, "2023-11-15"]) == [
        DayCount(DAY, 2, 2),
        DayCount("2023-11-15", 1, 1),
    ]


async def test_fail_unknown_jid_does_nothing(store: Store) -> None:
    assert not await store.fail("ghost", NOW, Placement("retries", NOW, entry("ghost")))
    assert await store.set_size("retries") == 0
    assert await store.counters() == Counters(0, 0)


async def test_extend_only_later(store: Store) -> None:
    await reserve(store, "a", reserve_for=600)
    assert await store.extend("a", NOW + 100)
    res = await store.reservation("a")
    assert res is not None and res.expires_at == NOW + 600
    assert await store.extend("a", NOW + 900)
    res = await store.reservation("a")
    assert res is not None and res.expires_at == NOW + 900
    assert not await store.extend("ghost", NOW + 900)


async def test_expire_loses_to_extend(store: Store) -> None:
    await reserve(store, "a", reserve_for=60)
    assert await store.extend("a", NOW + 120)
    placement = Placement("retries", NOW + 200, entry("a"))
    assert not await store.expire("a", NOW + 60, placement)
    assert await store.reservation("a") is not None
    assert await store.set_size("retries") == 0
    assert await store.expire("a", NOW + 120, placement)
    assert await store.reservation("a") is None
    assert await store.set_get("retries", "a") == Scored(NOW + 200, entry("a"))
    assert await store.counters() == Counters(1, 1)
    assert not await store.expire("a", NOW + 500, placement)


async def test_expired_ordering_and_limit(store: Store) -> None:
    for jid, reserve_for in (("c", 300), ("a", 100), ("b", 200), ("z", 5000)):
        await reserve(store, jid, reserve_for=reserve_for)
    due = await store.expired(NOW + 300, 10)
    assert [r.entry.jid for r in due] == ["a", "b", "c"]
    assert [r.entry.jid for r in await store.expired(NOW + 300, 2)] == ["a", "b"]
    assert await store.expired(NOW + 99, 10) == []
    await store.extend("a", NOW + 1000)
    assert [r.entry.jid for r in await store.expired(NOW + 300, 10)] == ["b", "c"]
    await store.ack("b", NOW)
    assert [r.entry.jid for r in await store.expired(NOW + 300, 10)] == ["c"]


async def test_working_ordered_by_expiry(store: Store) -> None:
    for jid, reserve_for in (("c", 300), ("a", 100), ("b", 200)):
        await reserve(store, jid, reserve_for=reserve_for)
    assert [r.entry.jid for r in await store.working(0, 10)] == ["a", "b", "c"]
    assert [r.entry.jid for r in await store.working(1, 1)] == ["b"]
    assert await store.working_size() == 3


# -- time-ordered sets ---------------------------------------------------------------------


async def add_three(store: Store) -> None:
    await store.add(
        "scheduled",
        [
            Scored(NOW + 20, entry("b", "mail", jobtype="Send")),
            Scored(NOW + 10, entry("a", "default", args=["needle"])),
            Scored(NOW + 30, entry("c", "default", jobtype="Send", args=["hay"])),
        ],
    )


async def test_add_replaces_by_jid(store: Store) -> None:
    await add_three(store)
    assert await store.set_size("scheduled") == 3
    await store.add("scheduled", [Scored(NOW + 5, entry("c", priority=9))])
    assert await store.set_size("scheduled") == 3
    assert await store.set_get("scheduled", "c") == Scored(NOW + 5, entry("c", priority=9))
    assert await store.set_get("scheduled", "nope") is None
    assert await store.set_get("dead", "c") is None
    assert await store.set_size("dead") == 0


async def test_next_due(store: Store) -> None:
    assert await store.next_due("scheduled") is None
    await add_three(store)
    assert await store.next_due("scheduled") == NOW + 10
    assert await store.next_due("retries") is None


async def test_set_page_order_offset_reverse(store: Store) -> None:
    await add_three(store)
    page = await store.set_page("scheduled", 0, 10)
    assert [(s.score, s.entry.jid) for s in page] == [
        (NOW + 10, "a"),
        (NOW + 20, "b"),
        (NOW + 30, "c"),
    ]
    assert page[1].entry == entry("b", "mail", jobtype="Send")
    assert [s.entry.jid for s in await store.set_page("scheduled", 1, 1)] == ["b"]
    assert [s.entry.jid for s in await store.set_page("scheduled", 0, 2, reverse=True)] == [
        "c",
        "b",
    ]
    assert [s.entry.jid for s in await store.set_page("scheduled", 2, 5, reverse=True)] == ["a"]
    assert await store.set_page("scheduled", 3, 5) == []


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (SetFilter(queue="default"), ["a", "c"]),
        (SetFilter(jobtype="Send"), ["b", "c"]),
        (SetFilter(text="needle"), ["a"]),
        (SetFilter(queue="default", jobtype="Send"), ["c"]),
        (SetFilter(queue="default", text="hay"), ["c"]),
        (SetFilter(text="absent"), []),
        (SetFilter(), ["a", "b", "c"]),
    ],
)
async def test_set_filters(store: Store, where: SetFilter, expected: list[str]) -> None:
    await add_three(store)
    assert [s.entry.jid for s in await store.set_page("scheduled", 0, 10, where=where)] == expected
    assert await store.set_count("scheduled", where) == len(expected)


async def test_set_page_filter_pages(store: Store) -> None:
    await store.add("dead", [Scored(NOW + i, entry(f"j{i}", f"q{i % 2}")) for i in range(10)])
    page = await store.set_page("dead", 1, 2, where=SetFilter(queue="q1"))
    assert [s.entry.jid for s in page] == ["j3", "j5"]
    page = await store.set_page("dead", 0, 2, reverse=True, where=SetFilter(queue="q0"))
    assert [s.entry.jid for s in page] == ["j8", "j6"]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (None, ["a", "b", "c"]),
        ("*", ["a", "b", "c"]),
        ('*"jid":"a"*', ["a"]),
        ('*"jobtype":"Send"*', ["b", "c"]),
        ('*"jid":"?"*', ["a", "b", "c"]),
        ('*"jid":"[ab]"*', ["a", "b"]),
        ('*"jid":"[^ab]"*', ["c"]),
        ('*"jid":"[a-b]"*', ["a", "b"]),
        ("*needle", []),
        ("*NEEDLE*", []),
        ("*needle*", ["a"]),
    ],
)
async def test_set_match_glob(store: Store, pattern: str | None, expected: list[str]) -> None:
    await add_three(store)
    assert sorted(s.entry.jid for s in await store.set_match("scheduled", pattern)) == expected


async def test_set_remove(store: Store) -> None:
    await add_three(store)
    assert await store.set_remove("scheduled", ["zz", "c", "a", "c"]) == ["c", "a"]
    assert await store.set_size("scheduled") == 1
    assert await store.set_remove("retries", ["b"]) == []
    assert await store.set_remove("scheduled", []) == []
    assert await store.set_remove("scheduled", ["b"]) == ["b"]
    assert await store.set_size("scheduled") == 0
    assert await store.next_due("scheduled") is None


async def test_set_move(store: Store) -> None:
    await add_three(store)
    assert await store.set_move("scheduled", ["c", "zz", "a"], "dead", NOW + 500) == ["c", "a"]
    assert await store.set_size("scheduled") == 1
    assert await store.set_size("dead") == 2
    moved = await store.set_get("dead", "a")
    assert moved == Scored(NOW + 500, entry("a", "default", args=["needle"]))
    assert await store.set_get("scheduled", "a") is None
    assert await store.set_move("scheduled", ["a"], "dead", NOW + 600) == []


async def test_set_move_within_a_set_rescores(store: Store) -> None:
    await add_three(store)
    assert await store.set_move("scheduled", ["b", "a"], "scheduled", NOW + 900) == ["b", "a"]
    assert await store.set_size("scheduled") == 3
    assert [item.score for item in await store.set_page("scheduled", 1, 2)] == [NOW + 900] * 2


async def test_move_due(store: Store) -> None:
    seen: list[set[str]] = []
    store.on_available(lambda queues: seen.append(set(queues)))
    await add_three(store)
    assert await store.move_due("scheduled", NOW + 5, 10) == 0
    assert await store.move_due("scheduled", NOW + 25, 1) == 1
    assert await store.set_size("scheduled") == 2
    assert await store.move_due("scheduled", NOW + 25, 10) == 1
    assert await store.set_size("scheduled") == 1
    assert await store.queue_sizes() == {"default": 1, "mail": 1}
    page = await store.queue_page("mail", 0, 10)
    assert [(q.entry.jid, q.enqueued_at) for q in page] == [("b", NOW + 25)]
    await eventually(lambda: {"default", "mail"} <= set().union(*seen))
    res = await store.fetch(["default"], NOW + 30, "w1")
    assert res is not None and res.entry == entry("a", "default", args=["needle"])
    assert res.enqueued_at == NOW + 25


async def test_requeue(store: Store) -> None:
    await add_three(store)
    assert await store.requeue("scheduled", ["c", "zz"], NOW + 1) == 1
    assert await store.set_size("scheduled") == 2
    assert [(q.entry.jid, q.enqueued_at) for q in await store.queue_page("default", 0, 9)] == [
        ("c", NOW + 1)
    ]
    assert await store.requeue("scheduled", None, NOW + 2) == 2
    assert await store.set_size("scheduled") == 0
    assert await store.queue_sizes() == {"default": 2, "mail": 1}


async def test_remove_before(store: Store) -> None:
    await store.add("dead", [Scored(NOW + i, entry(f"j{i}")) for i in range(10)])
    assert await store.remove_before("dead", NOW + 5, 3) == 3
    assert await store.next_due("dead") == NOW + 3
    assert await store.remove_before("dead", NOW + 5, 100) == 3
    assert await store.set_size("dead") == 4
    assert await store.next_due("dead") == NOW + 6


# -- on_available --------------------------------------------------------------------------


async def test_on_available_after_enqueue_requeue_resume(store: Store) -> None:
    seen: list[set[str]] = []
    store.on_available(lambda queues: seen.append(set(queues)))
    await store.enqueue([entry("a1", "a")], NOW)
    await eventually(lambda: any("a" in s for s in seen))
    await store.add("retries", [Scored(NOW, entry("b1", "b"))])
    await store.requeue("retries", None, NOW)
    await eventually(lambda: any("b" in s for s in seen))
    await store.pause(["a"])
    seen.clear()
    await store.resume(["a"])
    await eventually(lambda: any("a" in s for s in seen))


# -- counters, processes, flush -----------------------------------------------------------


async def test_history_of_unknown_days_is_zero(store: Store) -> None:
    assert await store.history(["2020-01-01"]) == [DayCount("2020-01-01", 0, 0)]
    assert await store.counters() == Counters(0, 0)


async def test_processes_crud(store: Store) -> None:
    process = Process("w1", hostname="h", pid=42, labels=["a", "b"], started_at=NOW, rss_kb=9)
    await store.put_process(process)
    assert await store.get_process("w1") == process
    changed = Process("w1", hostname="h", pid=42, labels=["a"], last_beat=NOW, state="quiet")
    await store.put_process(changed)
    linked = Process("w2", server="s1", connections=2, links={"s1:7419": [2, NOW]})
    await store.put_process(linked)
    assert await store.get_process("w1") == changed
    assert await store.get_process("w2") == linked
    assert sorted(p.wid for p in await store.processes()) == ["w1", "w2"]
    await store.delete_process("w1")
    assert await store.get_process("w1") is None
    assert [p.wid for p in await store.processes()] == ["w2"]


async def test_flush_keeps_processes(store: Store) -> None:
    await store.put_process(Process("w1", hostname="h"))
    await store.enqueue([entry("a1", "a"), entry("b1", "b")], NOW)
    await reserve(store, "r")
    await store.ack("r", NOW)
    await add_three(store)
    await store.add("dead", [Scored(NOW, entry("d"))])
    await store.pause(["a"])
    await store.flush()
    assert await store.queue_sizes() == {}
    assert await store.paused() == set()
    assert await store.fetch(["a", "b"], NOW, "w1") is None
    assert await store.set_size("scheduled") == 0
    assert await store.set_size("dead") == 0
    assert await store.counters() == Counters(0, 0)
    assert await store.history([DAY]) == [DayCount(DAY, 0, 0)]
    assert [p.wid for p in await store.processes()] == ["w1"]
    await store.enqueue([entry("again")], NOW)
    assert await drain(store, ["default"]) == ["again"]


# -- restarts --------------------------------------------------------------------------------


async def test_everything_survives_reopen(store: Store, reopen: Reopen) -> None:
    await store.enqueue([entry("q1", priority=1), entry("q2"), entry("q3", priority=9)], NOW)
    await store.enqueue([entry("p1", "paused")], NOW)
    await store.pause(["paused"])
    await reserve(store, "r1", queue="work", reserve_for=600)
    await reserve(store, "r2", queue="work")
    await reserve(store, "acked", queue="work")
    await store.ack("acked", NOW)
    await add_three(store)
    await store.put_process(Process("w1", labels=["x"]))
    before = await store.reservation("r1")

    store = await reopen()
    assert await store.queue_sizes() == {"default": 3, "paused": 1, "work": 0}
    assert await store.paused() == {"paused"}
    assert [q.entry.jid for q in await store.queue_page("default", 0, 10)] == ["q3", "q2", "q1"]
    assert await store.reservation("r1") == before
    assert await store.working_size() == 2
    assert await store.set_size("scheduled") == 3
    assert await store.next_due("scheduled") == NOW + 10
    assert await store.counters() == Counters(1, 0)
    assert await store.get_process("w1") == Process("w1", labels=["x"])
    assert await store.ack("r1", NOW) == before
    assert await store.fail("r2", NOW, Placement("retries", NOW, entry("r2", "work")))
    assert await store.counters() == Counters(3, 1)
    assert await drain(store, ["default", "paused"]) == ["q3", "q2", "q1"]


# -- the same jid pushed twice ---------------------------------------------------------


async def test_same_jid_enqueued_twice_is_delivered_twice(store: Store) -> None:
    # Faktory's rule (a queue is a list): each PUSH that got +OK is one delivery, even of
    # the same jid. The reservation belongs to the jid, so the second fetch takes it over.
    await store.enqueue([entry("twice", args=[1])], NOW)
    await store.enqueue([entry("twice", args=[2])], NOW + 1)
    assert (await store.queue_sizes()).get("default") == 2
    first = await store.fetch(["default"], NOW + 2, "w1")
    second = await store.fetch(["default"], NOW + 3, "w1")
    assert first is not None and second is not None
    assert [json.loads(r.entry.body)["args"] for r in (first, second)] == [[1], [2]]
    assert first.entry.jid == second.entry.jid == "twice"
    assert await store.fetch(["default"], NOW + 4, "w1") is None
    assert await store.ack("twice", NOW + 5) is not None
    assert await store.working_size() == 0
    assert (await store.queue_sizes()).get("default", 0) == 0


async def test_same_jid_enqueued_twice_in_one_batch(store: Store) -> None:
    await store.enqueue([entry("twin", args=[1]), entry("twin", args=[2])], NOW)
    assert (await store.queue_sizes()).get("default") == 2
    assert await drain(store, ["default"]) == ["twin", "twin"]


async def test_same_jid_twice_leaves_nothing_behind_after_a_restart(
    store: Store, reopen: Reopen
) -> None:
    await store.enqueue([entry("again", args=[1]), entry("again", args=[2])], NOW)
    assert len(await drain(store, ["default"])) == 2
    assert await store.ack("again", NOW + 1) is not None
    store = await reopen()
    assert await store.fetch(["default"], NOW + 2, "w1") is None
    assert await store.working_size() == 0
    assert (await store.queue_sizes()).get("default", 0) == 0
