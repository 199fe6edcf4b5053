"""Job results (Werk's extension) through a real server on SQLite and Redis: ACK with a
result, RESULT reads and waits, states along the job's life, expiry after ``result_ttl``
(controlled clock), the size limit, and what INFO and /metrics count."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from tests.enterprise.support import bulk_json, client_of, job, peer_of, rfc3339_in, take
from tests.features.conftest import Clock
from tests.helpers import Peer, ServerProcess, error_text
from werk.errors import ResultTooLargeError
from werk.manager import Manager
from werk.manager.features import default_middleware, max_result_bytes
from werk.manager.retry import FailureReport
from werk.protocol.resp import Simple
from werk.storage.base import Entry, Scored, SetName, Store


def result(peer: Peer, jid: str, timeout: float | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"jid": jid}
    if timeout is not None:
        payload["timeout"] = timeout
    return dict(bulk_json(peer.call("RESULT " + json.dumps(payload))))


def ack(peer: Peer, jid: str, value: Any) -> Any:
    return peer.call("ACK " + json.dumps({"jid": jid, "result": value}))


def test_a_result_is_stored_and_read(werk_server: ServerProcess) -> None:
    peer = peer_of(werk_server)
    asking = job(result_ttl=60)
    with client_of(werk_server) as client:
        client.push(asking)
        assert result(peer, asking["jid"])["state"] == "queued"
        take(client, "work")
        assert result(peer, asking["jid"])["state"] == "working"
    value = {"sum": 3, "items": ["a", "é"], "nested": [1.5, None, True]}
    assert ack(peer, asking["jid"], value) == Simple("OK")
    doc = result(peer, asking["jid"])
    assert doc["state"] == "succeeded" and doc["result"] == value
    assert (doc["jid"], doc["queue"], doc["jobtype"]) == (asking["jid"], "work", "Work")
    assert doc["finished_at"].endswith("Z") and doc["started_at"] <= doc["finished_at"]
    info = bulk_json(peer.call("INFO"))
    assert info["faktory"]["results"] == {"succeeded": 1, "failed": 0}


def test_states_of_a_failing_job(werk_server: ServerProcess) -> None:
    peer = peer_of(werk_server)
    retried = {**job(result_ttl=60), "retry": 1}
    dying = {**job(result_ttl=60), "retry": -1}
    discarded = {**job(result_ttl=60), "retry": 0}
    later = {**job(result_ttl=60), "at": "2099-01-01T00:00:00Z"}
    with client_of(werk_server) as client:
        client.push(later)
        for payload in (retried, dying, discarded):
            client.push(payload)
            client.fail(take(client, "work")["jid"], "ValueError", "bad input", ["line 1"])
    assert result(peer, later["jid"])["state"] == "scheduled"
    doc = result(peer, retried["jid"])
    assert doc["state"] == "retrying"
    assert doc["error"]["errtype"] == "ValueError" and doc["error"]["retry_count"] == 0
    doc = result(peer, dying["jid"])
    assert doc["state"] == "dead" and doc["error"]["message"] == "bad input"
    doc = result(peer, discarded["jid"])
    assert doc["state"] == "failed" and "result" not in doc
    assert doc["error"] == {
        "errtype": "ValueError",
        "message": "bad input",
        "backtrace": ["line 1"],
    }
    counted = bulk_json(peer.call("INFO"))["faktory"]["results"]
    assert counted == {"succeeded": 0, "failed": 2}


def test_jobs_that_did_not_ask(werk_server: ServerProcess) -> None:
    peer = peer_of(werk_server)
    plain = job()
    with client_of(werk_server) as client:
        client.push(plain)
        # A queued job that asked for nothing cannot be found by jid.
        assert result(peer, plain["jid"]) == {"jid": plain["jid"], "state": "unknown"}
        take(client, "work")
        assert result(peer, plain["jid"])["state"] == "working"
    # A result sent for a job that did not ask is dropped.
    assert ack(peer, plain["jid"], 42) == Simple("OK")
    assert result(peer, plain["jid"])["state"] == "unknown"
    assert result(peer, "nosuchjob1", timeout=5)["state"] == "unknown"


def test_wait_returns_when_the_job_ends(werk_server: ServerProcess) -> None:
    peer = peer_of(werk_server)
    asking = job(result_ttl=60)
    with client_of(werk_server) as client:
        client.push(asking)

        def work() -> None:
            time.sleep(0.3)
            with client_of(werk_server) as worker:
                fetched = take(worker, "work")
                time.sleep(0.2)
                worker.ack(fetched["jid"], result=["done"])

        thread = threading.Thread(target=work)
        started = time.monotonic()
        thread.start()
        doc = result(peer, asking["jid"], timeout=20)
        waited = time.monotonic() - started
        thread.join()
    assert doc["state"] == "succeeded" and doc["result"] == ["done"]
    assert 0.4 < waited < 10


def test_wait_times_out_with_the_current_state(werk_server: ServerProcess) -> None:
    peer = peer_of(werk_server)
    asking = job(result_ttl=60)
    with client_of(werk_server) as client:
        client.push(asking)
    started = time.monotonic()
    assert result(peer, asking["jid"], timeout=0.5)["state"] == "queued"
    assert time.monotonic() - started >= 0.5
    # Never early, however the wait falls against the event loop's millisecond clock.
    for _ in range(30):
        started = time.monotonic()
        assert result(peer, asking["jid"], timeout=0.0123)["state"] == "queued"
        assert time.monotonic() - started >= 0.0123


def test_size_limit(werk_server: ServerProcess) -> None:
    peer = peer_of(werk_server)
    asking = job(result_ttl=60)
    with client_of(werk_server) as client:
        client.push(asking)
        take(client, "work")
    reply = ack(peer, asking["jid"], "x" * (1024 * 1024))
    assert error_text(reply) == (
        "TOOLARGE result is 1048578 bytes, over the limit of 1048576 bytes"
    )
    # Nothing was done: the job is still reserved, and a smaller result goes through.
    assert result(peer, asking["jid"])["state"] == "working"
    assert ack(peer, asking["jid"], "x" * 1000) == Simple("OK")
    assert result(peer, asking["jid"])["result"] == "x" * 1000


def test_bad_commands(werk_server: ServerProcess) -> None:
    peer = peer_of(werk_server)
    assert error_text(peer.call("RESULT")) == "ERR RESULT needs an argument"
    assert error_text(peer.call("RESULT nope")) == "ERR invalid RESULT nope"
    assert error_text(peer.call('RESULT {"timeout": 1}')).startswith("ERR RESULT needs")
    reply = peer.call('RESULT {"jid": "abc12345", "timeout": -1}')
    assert error_text(reply).startswith("ERR RESULT timeout must be")
    reply = peer.call("PUSH " + json.dumps(job(result_ttl="soon")))
    assert error_text(reply) == "ERR result_ttl must be a number of seconds"
    reply = peer.call("PUSH " + json.dumps(job(result_ttl=40 * 86400)))
    assert error_text(reply).startswith("ERR result_ttl must be more than 0 and at most")
    # 0 is refused, and the message says so (it once read "between 0 and 2592000").
    reply = peer.call("PUSH " + json.dumps(job(result_ttl=0)))
    assert error_text(reply) == (
        "ERR result_ttl must be more than 0 and at most 2592000 seconds (30 days)"
    )


# -- expiry and the limit setting with a controlled clock, on the test's backend -------------


async def test_results_expire_after_their_ttl(store: Store) -> None:
    clock = Clock(1_800_000_000.0)
    manager = Manager(store, clock=clock, middleware=default_middleware(store, {}))
    results = manager.results_or_fail()
    for jid, ttl in (("short-jid-1", 10), ("long-jid-1", 3600)):
        await manager.push({**job(result_ttl=ttl), "jid": jid})
        assert await manager.fetch(["work"], timeout=0) is not None
        await manager.ack(jid, b'{"v":1}')
    await results.flush()  # the outcomes are written in the background
    clock.now += 9
    assert (await results.state("short-jid-1", clock.now))["result"] == {"v": 1}
    clock.now += 2
    assert (await results.state("short-jid-1", clock.now))["state"] == "unknown"
    assert (await results.state("long-jid-1", clock.now))["state"] == "succeeded"


async def test_failure_outcomes_expire_and_expired_jobs_fail(store: Store) -> None:
    clock = Clock(1_800_000_000.0)
    manager = Manager(store, clock=clock, middleware=default_middleware(store, {}))
    results = manager.results_or_fail()
    await manager.push({**job(result_ttl=5, expires_in=1), "jid": "expiring-1"})
    await manager.push({**job(result_ttl=5), "jid": "failing-1", "retry": 0})
    clock.now += 2
    assert (await manager.fetch(["work"], timeout=0) or b"").find(b"failing-1") > 0
    await manager.fail("failing-1", FailureReport("Boom", "no", []))
    await results.flush()
    doc = await results.state("expiring-1", clock.now)
    assert (doc["state"], doc["error"]["errtype"]) == ("failed", "Expired")
    assert (await results.state("failing-1", clock.now))["error"]["errtype"] == "Boom"
    clock.now += 6
    assert (await results.state("failing-1", clock.now))["state"] == "unknown"


class WriteOrder:
    """The test's real store, noting when each ``result:`` record write returns and when
    each job write (enqueue, scheduled set) starts: after that start a worker may fetch
    the jobs (the SQLite store shows them to a waiting FETCH before their commit)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.events: list[tuple[str, str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def put_record(self, key: str, value: bytes, ttl: float | None, now: float) -> None:
        await self.store.put_record(key, value, ttl, now)
        if key.startswith("result:"):
            self.events.append(("record", key.removeprefix("result:")))

    async def enqueue(self, entries: Sequence[Entry], now: float) -> None:
        self.events += [("stored", entry.jid) for entry in entries]
        await self.store.enqueue(entries, now)

    async def add(self, name: SetName, items: Sequence[Scored]) -> None:
        self.events += [("stored", item.entry.jid) for item in items]
        await self.store.add(name, items)


async def test_pending_records_are_durable_before_the_jobs_are_stored(store: Store) -> None:
    # A pending record written once a worker can fetch the job (or its chain's first job)
    # could land after the outcome and replace it: the outcome would read "queued" for good.
    spy = cast(Store, WriteOrder(store))
    manager = Manager(spy, middleware=default_middleware(spy, {}))
    # Given a chain whose first job and two later steps ask for results, and a PUSHB of a
    # queued and a scheduled job asking for theirs
    middle, last = job("B", result_ttl=60), job("C", result_ttl=60)
    first = job("A", result_ttl=60, chain=[middle, {**job("X"), "jid": None}, last])
    bulk = [job(result_ttl=60), {**job(result_ttl=60), "at": rfc3339_in(3600)}]
    # When they are pushed
    await manager.push(first)
    assert await manager.push_bulk(bulk) == {}
    # Then each pending record was durable before any of the jobs was stored
    events = cast(WriteOrder, spy).events
    pushes = [(first, [middle, last]), *((one, []) for one in bulk)]
    for pushed, steps in pushes:
        stored = events.index(("stored", pushed["jid"]))
        records = {("record", one["jid"]) for one in (pushed, *steps)}
        assert records <= set(events[:stored])
    assert len(events) == 8
    results = manager.results_or_fail()
    assert [(await results.state(j["jid"], 0))["state"] for j in (middle, last)] == ["queued"] * 2


async def test_the_size_limit_setting(store: Store) -> None:
    settings = {"results": {"max_bytes": 10}}
    assert max_result_bytes(settings) == 10 and max_result_bytes({}) == 1024 * 1024
    with pytest.raises(ValueError, match="max_bytes must be a positive integer"):
        max_result_bytes({"results": {"max_bytes": "big"}})
    manager = Manager(
        store, clock=Clock(1_800_000_000.0), middleware=default_middleware(store, settings)
    )
    await manager.push({**job(result_ttl=5), "jid": "limited-1"})
    await manager.fetch(["work"], timeout=0)
    with pytest.raises(ResultTooLargeError, match="result is 12 bytes, over the limit of 10"):
        await manager.ack("limited-1", b'"0123456789"')
    assert (await manager.results_or_fail().state("limited-1", 0))["state"] == "working"


def test_the_documented_results_table_is_accepted_by_a_real_server(tmp_path: Path) -> None:
    # The finding: conf.d with [results] max_bytes (documented in configuration.md and
    # protocol.md) made `werk server` refuse to start with "unknown table 'results'".
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "x.toml").write_text("[results]\nmax_bytes = 16\n")
    server = ServerProcess(tmp_path / "data", extra_args=["-c", str(tmp_path)]).start()
    try:
        peer = peer_of(server)
        asking = job(result_ttl=60)
        with client_of(server) as client:
            client.push(asking)
            take(client, "work")
        reply = ack(peer, asking["jid"], "x" * 20)
        assert "over the limit of 16" in error_text(reply)
    finally:
        server.stop()


def mutate(peer: Peer, **payload: Any) -> Any:
    return peer.call("MUTATE " + json.dumps(payload))


def fetch_and_fail(peer: Peer) -> None:
    jid = bulk_json(peer.call("FETCH work"))["jid"]
    doc = {"jid": jid, "errtype": "ValueError", "message": "bad input"}
    assert peer.call("FAIL " + json.dumps(doc)) == Simple("OK")


def assert_deleted(peer: Peer, jid: str, where: str) -> None:
    began = time.monotonic()
    doc = result(peer, jid, timeout=10)  # ends at once: the job will never run
    assert time.monotonic() - began < 5
    assert doc["state"] == "failed", doc
    assert doc["error"] == {
        "errtype": "Deleted",
        "message": f"the job was deleted from {where}",
        "backtrace": [],
    }


def test_a_job_deleted_from_its_queue_fails_its_result(flushed_peer: Peer) -> None:
    # Given a queued job that asked for a result, and one that did not
    asking, plain = job(result_ttl=60), job()
    for payload in (asking, plain):
        assert flushed_peer.call("PUSH " + json.dumps(payload)) == Simple("OK")
    assert result(flushed_peer, asking["jid"])["state"] == "queued"
    # When both are deleted from the queue (twice: the second time finds nothing)
    jids = [asking["jid"], plain["jid"], asking["jid"]]
    selection = {"cmd": "discard", "target": "queue", "queue": "work", "filter": {"jids": jids}}
    assert mutate(flushed_peer, **selection) == 2
    assert mutate(flushed_peer, **selection) == 0
    # Then its RESULT is failed, errtype Deleted, and a wait on it ends at once
    assert_deleted(flushed_peer, asking["jid"], "queue work")
    assert result(flushed_peer, plain["jid"])["state"] == "unknown"
    assert flushed_peer.call("FETCH work") is None


def test_jobs_discarded_or_cleared_from_a_set_fail_their_results(flushed_peer: Peer) -> None:
    # Given jobs asking for results: scheduled, retrying, killed into the dead set, dead
    later = {**job(result_ttl=60), "at": "2099-01-01T00:00:00Z"}
    killed = {**job(result_ttl=60), "at": "2099-01-01T00:00:00Z"}
    retrying = {**job(result_ttl=60), "retry": 1}
    dying = {**job(result_ttl=60), "retry": -1}
    for payload in (later, killed):
        assert flushed_peer.call("PUSH " + json.dumps(payload)) == Simple("OK")
    filtered = {"filter": {"jids": [killed["jid"]]}}
    assert mutate(flushed_peer, cmd="kill", target="scheduled", **filtered) == Simple("OK")
    for payload in (retrying, dying):
        assert flushed_peer.call("PUSH " + json.dumps(payload)) == Simple("OK")
        fetch_and_fail(flushed_peer)
    assert result(flushed_peer, killed["jid"])["state"] == "dead"
    # When each set loses them (discard by jid, or clear)
    filtered = {"filter": {"jids": [later["jid"]]}}
    assert mutate(flushed_peer, cmd="discard", target="scheduled", **filtered) == Simple("OK")
    assert mutate(flushed_peer, cmd="clear", target="retries") == Simple("OK")
    assert mutate(flushed_peer, cmd="clear", target="dead") == Simple("OK")
    # Then each wait ends: failed with errtype Deleted, naming the set
    assert_deleted(flushed_peer, later["jid"], "the scheduled set")
    assert_deleted(flushed_peer, retrying["jid"], "the retries set")
    # A job that died, or was killed, keeps its own outcome: it ended before it was cleared
    doc = result(flushed_peer, dying["jid"])
    assert doc["state"] == "dead" and doc["error"]["message"] == "bad input"
    doc = result(flushed_peer, killed["jid"])
    assert doc["state"] == "dead" and doc["error"]["errtype"] == "Killed", doc


def test_a_deleted_chain_step_ends_its_chain(flushed_peer: Peer) -> None:
    # Given a chain A -> B -> C where only C asks for a result
    last = job("C", result_ttl=60)
    first = job("A", chain=[job("B"), last])
    assert flushed_peer.call("PUSH " + json.dumps(first)) == Simple("OK")
    assert result(flushed_peer, last["jid"])["state"] == "queued"
    # When A is deleted from its queue before it runs
    selection = {"queue": "work", "filter": {"jids": [first["jid"]]}}
    assert mutate(flushed_peer, cmd="discard", target="queue", **selection) == 1
    # Then C's result is failed as for any ended chain, naming A
    doc = result(flushed_peer, last["jid"], timeout=10)
    assert doc["state"] == "failed"
    assert doc["error"]["errtype"] == "ChainEnded"
    assert doc["error"]["message"] == (
        f"the chain ended: job {first['jid']} was deleted from queue work"
    )


@pytest.mark.parametrize(
    ("ending", "retry", "final"),
    [
        ('ACK {"jid":"%s","result":5}', 25, "succeeded"),
        ('FAIL {"jid":"%s","errtype":"E","message":"m"}', 0, "failed"),
        ('FAIL {"jid":"%s","errtype":"E","message":"m"}', 1, "retrying"),
    ],
    ids=["ack", "fail-discarded", "fail-retried"],
)
def test_a_job_being_ended_never_reads_as_queued(
    werk_server: ServerProcess, ending: str, retry: int, final: str
) -> None:
    """Between a job leaving its reservation and its record's final write, RESULT said
    ``queued`` (a Django task read READY while failing): it says ``working`` until then."""
    reader = peer_of(werk_server)
    for _ in range(5):
        asking = {**job(result_ttl=60), "retry": retry}
        with client_of(werk_server) as client:
            client.push(asking)
            take(client, "work")
            jid = asking["jid"]
            ender = peer_of(werk_server)
            looks = f'RESULT {{"jid":"{jid}"}}\r\n'
            ender.send(ending % jid + "\r\n")
            reader.send(looks * 30)  # read while the ACK or FAIL is being handled
            states = [dict(bulk_json(reader.reply()))["state"] for _ in range(30)]
            assert ender.reply() == Simple("OK")
            assert "queued" not in states, states
            assert result(reader, jid)["state"] == final
