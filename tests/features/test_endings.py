"""Every way a job leaves the server without an ACK tells the features that wait on it, by
kind, on SQLite, Redis and PostgreSQL: a waiting RESULT ends at once with the job's fate, its
chain ends (the later step's result fails ``ChainEnded``, naming the job), its batch counts
it as failed (the ``complete`` callback fires) and its tracked state is final.

The paths: deleted from its queue (MUTATE target ``queue``), its queue removed (QUEUE REMOVE,
paused or not, by name or ``*``), discarded or cleared from the scheduled or retry set,
killed from either (MUTATE ``kill``), dropped at fetch because it expired, FAILed to the dead
set or discarded by FAIL, and its reservation expired (the reaper, with a controlled clock).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import ServerProcess
from tests.enterprise.support import bulk_json, job
from tests.features.conftest import Clock
from tests.helpers import Peer
from werk.manager import Manager
from werk.manager.features import default_middleware
from werk.protocol.resp import Simple
from werk.storage.base import Store

OK = Simple("OK")
FUTURE = "2099-01-01T00:00:00Z"
PAST = "2000-01-01T00:00:00Z"


def call(peer: Peer, verb: str, payload: Any) -> Any:
    return peer.call(f"{verb} {json.dumps(payload)}")


def fetch_and_fail(peer: Peer, count: int) -> None:
    for _ in range(count):
        jid = bulk_json(peer.call("FETCH work"))["jid"]
        doc = {"jid": jid, "errtype": "ValueError", "message": "bad input"}
        assert call(peer, "FAIL", doc) == OK


@dataclass(frozen=True)
class Path:
    """One way out: where the jobs wait first, what is done, and what a waiter then gets."""

    place: str  # "queue", "scheduled", "retries" or "working"
    act: Callable[[Peer, list[str]], Any]
    state: str
    errtype: str
    message: str
    outcome: str  # how the chain's reason names the job's fate
    tracked: str = "failed"
    fields: dict[str, Any] = field(default_factory=dict)
    custom: dict[str, Any] = field(default_factory=dict)


def discard_queued(peer: Peer, jids: list[str]) -> None:
    selection = {"cmd": "discard", "target": "queue", "queue": "work", "filter": {"jids": jids}}
    assert call(peer, "MUTATE", selection) == len(jids)


def remove_paused(peer: Peer, jids: list[str]) -> None:
    assert peer.call("QUEUE PAUSE work") == OK
    assert peer.call("QUEUE REMOVE work") == OK


def mutate(cmd: str, target: str, by_jid: bool) -> Callable[[Peer, list[str]], None]:
    def act(peer: Peer, jids: list[str]) -> None:
        payload: dict[str, Any] = {"cmd": cmd, "target": target}
        if by_jid:
            payload["filter"] = {"jids": jids}
        assert call(peer, "MUTATE", payload) == OK

    return act


def fetch_expired(peer: Peer, jids: list[str]) -> None:
    # The expired jobs come first; the plain job pushed after them is the one handed out.
    assert bulk_json(peer.call("FETCH work"))["jid"] == "filler-job-1"


def fail_all(peer: Peer, jids: list[str]) -> None:
    for jid in jids:
        doc = {"jid": jid, "errtype": "ValueError", "message": "bad input"}
        assert call(peer, "FAIL", doc) == OK


def remove(names: str) -> Callable[[Peer, list[str]], None]:
    def act(peer: Peer, jids: list[str]) -> None:
        assert peer.call(f"QUEUE REMOVE {names}") == OK

    return act


def from_queue(act: Callable[[Peer, list[str]], None]) -> Path:
    """A way of deleting the jobs waiting in queue ``work``."""
    deleted = "the job was deleted from queue work"
    return Path("queue", act, "failed", "Deleted", deleted, "was deleted from queue work")


PATHS = {
    "deleted from its queue": from_queue(discard_queued),
    "queue removed": from_queue(remove("work")),
    "paused queue removed": from_queue(remove_paused),
    "every queue removed": from_queue(remove("*")),
    "discarded from the scheduled set": Path(
        "scheduled",
        mutate("discard", "scheduled", True),
        "failed",
        "Deleted",
        "the job was deleted from the scheduled set",
        "was deleted from the scheduled set",
    ),
    "retry set cleared": Path(
        "retries",
        mutate("clear", "retries", False),
        "failed",
        "Deleted",
        "the job was deleted from the retries set",
        "was deleted from the retries set",
    ),
    "killed from the scheduled set": Path(
        "scheduled",
        mutate("kill", "scheduled", True),
        "dead",
        "Killed",
        "the job was killed from the scheduled set",
        "was killed from the scheduled set",
        tracked="dead",
    ),
    "retry set killed": Path(
        "retries",
        mutate("kill", "retries", False),
        "dead",
        "ValueError",  # a killed job that had failed keeps its last error
        "bad input",
        "was killed from the retries set",
        tracked="dead",
    ),
    "expired": Path(
        "queue",
        fetch_expired,
        "failed",
        "Expired",
        "the job expired before it ran",
        "expired before it ran",
        custom={"expires_at": PAST},
    ),
    "died by FAIL": Path(
        "working", fail_all, "dead", "ValueError", "bad input", "died", "dead", {"retry": -1}
    ),
    "discarded by FAIL": Path(
        "working",
        fail_all,
        "failed",
        "ValueError",
        "bad input",
        "was discarded",
        fields={"retry": 0},
    ),
}


def place(peer: Peer, path: Path, jobs: list[dict[str, Any]]) -> None:
    for payload in jobs:
        if path.place == "scheduled":
            payload["at"] = FUTURE
        if path.place == "retries":
            payload["retry"] = 5
        payload.update(path.fields)
        payload["custom"].update(path.custom)
        assert call(peer, "PUSH", payload) == OK
    if path.place == "retries":
        fetch_and_fail(peer, len(jobs))
    if path.place == "working":
        for _ in jobs:
            assert bulk_json(peer.call("FETCH work")) is not None
    if path.custom:
        assert call(peer, "PUSH", {**job(), "jid": "filler-job-1"}) == OK


def result(peer: Peer, jid: str) -> dict[str, Any]:
    began = time.monotonic()
    doc = bulk_json(call(peer, "RESULT", {"jid": jid, "timeout": 10}))
    assert time.monotonic() - began < 5, doc  # at once: the job will never run
    assert isinstance(doc, dict)
    return doc


@pytest.mark.parametrize("name", list(PATHS))
def test_every_way_out_ends_the_result_the_chain_the_batch_and_tracking(
    flushed_peer: Peer, name: str
) -> None:
    path = PATHS[name]
    peer = flushed_peer
    # Given a committed batch, a job in it asking for a result and tracked, and a chain
    # whose first job asks for nothing and whose next step asks for a result
    batch = {"complete": job("OnComplete", "cb")}
    reply = call(peer, "BATCH NEW", batch)
    assert isinstance(reply, bytes), reply
    bid = reply.decode()
    asking = job("A", result_ttl=60, track=True, bid=bid)
    step = job("B", result_ttl=60)
    chaining = job("A", chain=[step])
    place(peer, path, [asking, chaining])
    assert peer.call(f"BATCH COMMIT {bid}") == OK
    # When they leave the server by this path
    path.act(peer, [asking["jid"], chaining["jid"]])
    # Then a wait on the job's result ends at once, with its fate
    doc = result(peer, asking["jid"])
    assert doc["state"] == path.state, doc
    assert (doc["error"]["errtype"], doc["error"]["message"]) == (path.errtype, path.message)
    # And the chain ended: its next step's result failed, naming the job
    doc = result(peer, step["jid"])
    assert doc["state"] == "failed" and doc["error"]["errtype"] == "ChainEnded", doc
    assert doc["error"]["message"] == f"the chain ended: job {chaining['jid']} {path.outcome}"
    # And the batch counts the job as failed: its complete callback fired
    status = bulk_json(peer.call(f"BATCH STATUS {bid}"))
    assert (status["failed"], status["complete_st"], status["success_st"]) == (1, "1", "")
    # And the tracked state is final
    assert bulk_json(peer.call(f"TRACK GET {asking['jid']}"))["state"] == path.tracked


RACED = 2000


def consume(server: ServerProcess, stop: threading.Event, acked: set[str]) -> None:
    """FETCH and ACK jobs of queue ``work``, ten pipelined at a time, until ``stop`` or a
    quarter of them was taken (the rest stays for the deletion: a job it skipped would not
    be fetched later by chance)."""
    peer = Peer(server.host, server.port)
    assert peer.hello(wid=f"w{threading.get_ident()}", hostname="h", pid=1) == OK
    while not stop.is_set() and len(acked) < RACED // 4:
        peer.send(b"FETCH work\r\n" * 10)
        jids = [bulk_json(reply)["jid"] for _ in range(10) if (reply := peer.reply()) is not None]
        peer.send("".join(f'ACK {{"jid":"{jid}"}}\r\n' for jid in jids))
        assert [peer.reply() for _ in jids] == [OK] * len(jids)
        acked.update(jids)


def discard_listed(peer: Peer, jids: list[str]) -> None:
    selection = {"cmd": "discard", "target": "queue", "queue": "work", "filter": {"jids": jids}}
    assert isinstance(call(peer, "MUTATE", selection), int)


@pytest.mark.parametrize("act", [remove("work"), discard_listed], ids=["remove", "discard"])
def test_a_deletion_racing_fetches_ends_every_result_it_took(
    flushed_server: ServerProcess, act: Callable[[Peer, list[str]], None]
) -> None:
    peer = Peer(flushed_server.host, flushed_server.port)
    assert peer.hello() == OK
    # Given a queue of jobs asking for a result, and three workers taking them meanwhile
    jobs = [job("A", result_ttl=60) for _ in range(RACED)]
    for start in range(0, RACED, 500):
        assert call(peer, "PUSHB", jobs[start : start + 500]) == b"{}"
    stop, acked = threading.Event(), set[str]()
    workers = [
        threading.Thread(target=consume, args=(flushed_server, stop, acked)) for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    while len(acked) < 20:
        time.sleep(0.01)
    # When the queue's jobs are deleted while the workers FETCH from its head
    try:
        act(peer, [payload["jid"] for payload in jobs])
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    # Then every job either succeeded (ACKed) or failed as deleted: none waits as queued
    for payload in jobs:
        doc = bulk_json(call(peer, "RESULT", {"jid": payload["jid"]}))
        if payload["jid"] in acked:
            assert doc["state"] == "succeeded", doc
        else:
            assert doc["state"] == "failed" and doc["error"]["errtype"] == "Deleted", doc


async def test_an_expired_reservation_ends_the_result_and_the_chain(store: Store) -> None:
    # Given a job that dies at its first failure, carrying a chain, and asking for a result
    clock = Clock(1_700_000_000.0)
    manager = Manager(store, clock, default_middleware(store, {}))
    step = job("B", result_ttl=60)
    dying = {**job("A", result_ttl=60, chain=[step]), "retry": -1, "reserve_for": 60}
    await manager.push(dying)
    assert await manager.fetch(["work"], "w", timeout=0) is not None
    # When its worker is gone and the reservation expires
    clock.now += 61
    assert len(await manager.reap_reservations()) == 1
    # Then the job is dead with the reaper's error, and its chain ended
    results = manager.results
    assert results is not None
    doc = await results.state(dying["jid"], clock.now)
    assert doc["state"] == "dead" and doc["error"]["errtype"] == "ReservationExpired", doc
    doc = await results.state(step["jid"], clock.now)
    assert doc["state"] == "failed" and doc["error"]["errtype"] == "ChainEnded", doc
    assert doc["error"]["message"] == f"the chain ended: job {dying['jid']} died"
    await results.flush()
    await store.close()
