"""Deleting, killing and requeueing a set's jobs goes a chunk at a time, on SQLite, Redis
and PostgreSQL: each store call takes at most ``deletion.CHUNK`` jobs (so a PUSH from
another client waits one chunk, never the whole set), a set of several chunks is emptied,
and the features waiting on a job hear of it exactly when a call really took it: a job
taken meanwhile (retried to its queue, then fetched) is neither counted nor reported.

In process (with chunks of :data:`CHUNK`), a store wrapper lets a racer requeue some jobs
of each chunk just before the call that would take them, or add jobs to the set before
each requeue; over sockets, a client requeues and a worker fetches jobs while another
client clears or kills the set, or pushes scheduled jobs while another requeues it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import pytest

from tests.conftest import ServerProcess
from tests.enterprise.support import bulk_json, job
from tests.features.conftest import Clock
from tests.helpers import Peer
from tests.storage.test_contract import entry
from werk.manager import Manager, deletion
from werk.manager.features import default_middleware
from werk.manager.selectors import parse_filter
from werk.protocol.resp import Simple
from werk.storage.base import Scored, SetName, Store

OK = Simple("OK")
NOW = 1_700_000_000.0
FUTURE = "2099-01-01T00:00:00Z"
CHUNK = 40
"""A small chunk for the in-process tests (the servers use ``deletion.CHUNK``)."""
JOBS = 2 * CHUNK + 7


class Racing:
    """A store whose ``set_remove`` and ``set_move`` first requeue the listed jobs that are
    in ``raced`` (as a retry falling due meanwhile would), and record each call's jids."""

    def __init__(self, store: Store, raced: set[str]) -> None:
        self._store = store
        self.raced = raced
        self.calls: list[list[str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def set_remove(self, name: SetName, jids: Sequence[str]) -> list[str]:
        await self._race(name, jids)
        return await self._store.set_remove(name, jids)

    async def set_move(
        self, name: SetName, jids: Sequence[str], to: SetName, score: float
    ) -> list[str]:
        await self._race(name, jids)
        return await self._store.set_move(name, jids, to, score)

    async def _race(self, name: SetName, jids: Sequence[str]) -> None:
        self.calls.append(list(jids))
        racing = [jid for jid in jids if jid in self.raced]
        if racing:
            assert await self._store.requeue(name, racing, NOW) == len(racing)


Act = Callable[[Manager, list[str]], Awaitable[int]]


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deletion, "CHUNK", CHUNK)


async def clear(manager: Manager, jids: list[str]) -> int:
    return await manager.set_remove("scheduled", None)


async def discard(manager: Manager, jids: list[str]) -> int:
    return await manager.set_remove("scheduled", jids)


async def kill_all(manager: Manager, jids: list[str]) -> int:
    return await manager.deletions.kill("scheduled", None)


async def kill(manager: Manager, jids: list[str]) -> int:
    return await manager.deletions.kill("scheduled", jids)


ACTS: dict[str, tuple[Act, str]] = {
    "clear": (clear, "failed"),
    "discard": (discard, "failed"),
    "kill all": (kill_all, "dead"),
    "kill listed": (kill, "dead"),
}


@pytest.mark.parametrize("name", list(ACTS))
async def test_a_set_is_taken_a_chunk_at_a_time_reporting_only_what_each_call_took(
    store: Store, name: str
) -> None:
    act, state = ACTS[name]
    # Given a scheduled set of several chunks, every other job asking for a result
    payloads = [
        {**job("A", **({"result_ttl": 60} if i % 2 else {})), "at": FUTURE} for i in range(JOBS)
    ]
    jids = [payload["jid"] for payload in payloads]
    # And a racer that requeues a few jobs of each chunk (results or not) just before it
    # is taken
    raced = {jid for i, jid in enumerate(jids) if i % 97 in (0, 1)}
    racing = Racing(store, raced)
    clock = Clock(NOW)
    manager = Manager(cast("Store", racing), clock, default_middleware(store, {}))
    results = manager.results
    assert results is not None
    for payload in payloads:
        await manager.push(payload)
    # When the set is deleted or killed
    done = await act(manager, jids)
    # Then every store call took at most one chunk, and together they tried every job once
    assert max(len(call) for call in racing.calls) <= CHUNK
    assert sorted(jid for call in racing.calls for jid in call) == sorted(jids)
    # And the set is empty: the jobs not raced are gone (or dead), the raced ones queued
    assert done == JOBS - len(raced)
    assert await store.set_size("scheduled") == 0
    assert await store.set_size("dead") == (done if state == "dead" else 0)
    assert (await store.queue_sizes()).get("work") == len(raced)
    # And a result ended exactly for each job taken; a raced one still waits, queued
    for i, jid in enumerate(jids):
        if i % 2:
            doc = await results.state(jid, NOW)
            assert doc["state"] == ("queued" if jid in raced else state), doc


async def test_killing_the_whole_dead_set_rescores_each_job_once(store: Store) -> None:
    # Given a dead set of several chunks
    jids = [f"dead-{i}" for i in range(JOBS)]
    await store.add("dead", [Scored(NOW + i, entry(jid)) for i, jid in enumerate(jids)])
    racing = Racing(store, set())
    clock = Clock(NOW + 10_000)
    manager = Manager(cast("Store", racing), clock, default_middleware(store, {}))
    # When all of it is killed again (each job moved within the set, to the end)
    assert await manager.deletions.kill("dead", None) == JOBS
    # Then each job was moved once, a chunk per call, and all now expire later
    assert sorted(jid for call in racing.calls for jid in call) == sorted(jids)
    assert max(len(call) for call in racing.calls) <= CHUNK
    scores = {item.score for item in await store.set_page("dead", 0, JOBS + 1)}
    assert len(await store.set_page("dead", 0, JOBS + 1)) == JOBS
    assert min(scores) > NOW + 10_000


class Landing:
    """A store whose ``requeue`` records each call's jids and, before each of the first
    :data:`LANDS` calls, adds jobs to the set: a new one at its head and one at its tail
    (retries landing meanwhile), and the first job the call before moved (requeued,
    fetched and failed again meanwhile)."""

    LANDS = 3

    def __init__(self, store: Store) -> None:
        self._store = store
        self.calls: list[list[str]] = []
        self.landed: list[str] = []
        self.returned: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def requeue(self, name: SetName, jids: Sequence[str] | None, now: float) -> int:
        assert jids is not None, "a whole set requeued in one store call"
        if len(self.calls) < self.LANDS:
            await self._land(name)
        self.calls.append(list(jids))
        return await self._store.requeue(name, jids, now)

    async def _land(self, name: SetName) -> None:
        n = len(self.calls)
        new = [
            Scored(NOW - n, entry(f"head-{n}", "work")),
            Scored(NOW + 10**6 + n, entry(f"tail-{n}", "work")),
        ]
        self.landed += [item.entry.jid for item in new]
        if self.calls:
            back = self.calls[-1][0]
            self.returned.append(back)
            new.append(Scored(NOW + 10**7 + n, entry(back, "work")))
        await self._store.add(name, new)


async def test_a_whole_set_is_requeued_a_chunk_at_a_time_with_the_jobs_landing_meanwhile(
    store: Store,
) -> None:
    # Given a retry set of several chunks
    jids = [f"retry-{i:03d}" for i in range(JOBS)]
    await store.add("retries", [Scored(NOW + i, entry(jid, "work")) for i, jid in enumerate(jids)])
    # And jobs landing in it before each store call of the requeue
    landing = Landing(store)
    manager = Manager(cast("Store", landing), Clock(NOW), [])
    # When the whole set is requeued (MUTATE requeue with no filter)
    done = await manager.mutate("requeue", "retries", None)
    # Then each store call moved at most one chunk, and together they tried each job once:
    # every job of the set and every one landed meanwhile
    assert max(len(call) for call in landing.calls) <= CHUNK
    tried = sorted(jid for call in landing.calls for jid in call)
    assert tried == sorted(jids + landing.landed)
    assert done == JOBS + len(landing.landed)
    queued = [item.entry.jid for item in await store.queue_page("work", 0, 10 * JOBS)]
    assert sorted(queued) == tried
    # And a job back in the set after it moved was not requeued twice: it waits there
    left = [item.entry.jid for item in await store.set_page("retries", 0, 10 * JOBS)]
    assert sorted(left) == sorted(set(landing.returned))


async def test_listed_jobs_are_requeued_a_chunk_at_a_time(store: Store) -> None:
    # Given a scheduled set of several chunks
    jids = [f"sched-{i:03d}" for i in range(JOBS)]
    await store.add(
        "scheduled", [Scored(NOW + i, entry(jid, "work")) for i, jid in enumerate(jids)]
    )
    landing = Landing(store)
    manager = Manager(cast("Store", landing), Clock(NOW), [])
    # When all but one of them, and a jid not in the set, are requeued by a filter
    listed = [*jids[1:], "absent"]
    done = await manager.mutate("requeue", "scheduled", parse_filter({"jids": listed}))
    # Then each store call moved at most one chunk, and the listed jobs moved
    assert max(len(call) for call in landing.calls) <= CHUNK
    assert sorted(jid for call in landing.calls for jid in call) == sorted(listed)
    assert done == JOBS - 1
    queued = {item.entry.jid for item in await store.queue_page("work", 0, 10 * JOBS)}
    assert set(jids[1:]) <= queued and jids[0] not in queued


RACED = 2 * deletion.CHUNK + 100


def call(peer: Peer, verb: str, payload: Any) -> Any:
    return peer.call(f"{verb} {json.dumps(payload)}")


def retry(server: ServerProcess, jids: list[str], stop: threading.Event) -> None:
    """Requeue the listed jobs of the scheduled set ten at a time until ``stop``."""
    peer = Peer(server.host, server.port)
    assert peer.hello() == OK
    for start in range(0, len(jids), 10):
        if stop.is_set():
            return
        selection = {"cmd": "requeue", "target": "scheduled", "filter": {"jids": jids[start:][:10]}}
        assert call(peer, "MUTATE", selection) == OK


def take(server: ServerProcess, stop: threading.Event, acked: set[str]) -> None:
    """FETCH and ACK jobs of queue ``work`` until ``stop`` and the queue is empty (a FETCH
    waits a moment for a job before it says there is none)."""
    peer = Peer(server.host, server.port)
    assert peer.hello(wid=f"w{threading.get_ident()}", hostname="h", pid=1) == OK
    while (reply := peer.call("FETCH work")) is not None or not stop.is_set():
        if reply is not None:
            jid = bulk_json(reply)["jid"]
            assert call(peer, "ACK", {"jid": jid}) == OK
            acked.add(jid)


@pytest.mark.parametrize("cmd", ["clear", "kill"])
def test_a_clear_or_kill_racing_retries_and_fetches_ends_every_result_it_took(
    flushed_server: ServerProcess, cmd: str
) -> None:
    peer = Peer(flushed_server.host, flushed_server.port)
    assert peer.hello() == OK
    # Given a scheduled set of several chunks of jobs asking for a result
    jobs = [{**job("A", result_ttl=60), "at": FUTURE} for _ in range(RACED)]
    for start in range(0, RACED, 500):
        assert call(peer, "PUSHB", jobs[start : start + 500]) == b"{}"
    # And a client retrying every other one while a worker fetches and ACKs them
    stops, acked = (threading.Event(), threading.Event()), set[str]()
    jids = [payload["jid"] for payload in jobs[::2]]
    threads = (
        threading.Thread(target=retry, args=(flushed_server, jids, stops[0])),
        threading.Thread(target=take, args=(flushed_server, stops[1], acked)),
    )
    for thread in threads:
        thread.start()
    while not acked and threads[0].is_alive():
        time.sleep(0.01)
    # When the whole set is cleared or killed meanwhile
    try:
        assert call(peer, "MUTATE", {"cmd": cmd, "target": "scheduled"}) == OK
    finally:
        for stop, thread in zip(stops, threads, strict=True):  # the worker drains last
            stop.set()
            thread.join()
    # Then every job either succeeded (retried and ACKed) or ended as the set's jobs did
    assert acked
    ended = "failed" if cmd == "clear" else "dead"
    for payload in jobs:
        doc = bulk_json(call(peer, "RESULT", {"jid": payload["jid"]}))
        assert doc["state"] == ("succeeded" if payload["jid"] in acked else ended), doc


def schedule(server: ServerProcess, stop: threading.Event, pushed: list[str]) -> None:
    """PUSH scheduled jobs of queue ``work`` one at a time until ``stop``."""
    peer = Peer(server.host, server.port)
    assert peer.hello() == OK
    while not stop.is_set():
        payload = {**job("A"), "at": FUTURE}
        assert call(peer, "PUSH", payload) == OK
        pushed.append(payload["jid"])


def test_a_whole_set_requeue_racing_pushes_moves_every_job_once(
    flushed_server: ServerProcess,
) -> None:
    peer = Peer(flushed_server.host, flushed_server.port)
    assert peer.hello(wid="w-requeue", hostname="h", pid=1) == OK
    # Given a scheduled set of several chunks
    jobs = [{**job("A"), "at": FUTURE} for _ in range(RACED)]
    for start in range(0, RACED, 500):
        assert call(peer, "PUSHB", jobs[start : start + 500]) == b"{}"
    # And a client pushing scheduled jobs meanwhile
    stop, pushed = threading.Event(), list[str]()
    pusher = threading.Thread(target=schedule, args=(flushed_server, stop, pushed))
    pusher.start()
    while not pushed:
        time.sleep(0.01)
    # When the whole set is requeued
    try:
        assert call(peer, "MUTATE", {"cmd": "requeue", "target": "scheduled"}) == OK
    finally:
        stop.set()
        pusher.join()
    # Then every job is either queued once or (pushed after the requeue) still scheduled
    info = bulk_json(peer.call("INFO"))["faktory"]
    queued, left = info["queues"].get("work", 0), info["sets"]["scheduled"]
    assert queued + left == RACED + len(pushed)
    assert queued >= RACED
    seen = []
    while (reply := peer.call("FETCH work")) is not None:
        seen.append(bulk_json(reply)["jid"])
        if len(seen) == queued:
            break
    assert len(seen) == len(set(seen)) == queued
    assert {payload["jid"] for payload in jobs} <= set(seen)
