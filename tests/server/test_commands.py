"""Every command of the work protocol, through a real server and a raw socket."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from tests.helpers import Peer, error_text, push_line
from werk.protocol.resp import Simple

OK = Simple("OK")


def info(conn: Peer) -> dict[str, Any]:
    reply = conn.call("INFO")
    assert isinstance(reply, bytes)
    doc: dict[str, Any] = json.loads(reply)
    return doc


def fetch(conn: Peer, queues: str = "default") -> dict[str, Any] | None:
    reply = conn.call(f"FETCH {queues}")
    if reply is None:
        return None
    assert isinstance(reply, bytes), reply
    job: dict[str, Any] = json.loads(reply)
    return job


def test_push_fetch_ack_round_trip(peer: Peer) -> None:
    job = {
        "jid": "jid-00001",
        "jobtype": "Add",
        "args": [1, 2],
        "custom": {"k": "v"},
        "blargh": "kept",
        "queue": "default",
    }
    assert peer.call("PUSH " + json.dumps(job)) == OK
    got = fetch(peer)
    assert got is not None
    assert {k: got[k] for k in job} == job
    assert got["retry"] == 25 and got["priority"] == 5
    assert got["enqueued_at"].endswith("Z") and got["created_at"].endswith("Z")
    assert info(peer)["faktory"]["sets"]["working"] == 1
    assert peer.call('ACK {"jid":"jid-00001"}') == OK
    doc = info(peer)
    assert doc["faktory"]["sets"]["working"] == 0
    assert doc["faktory"]["total_processed"] == 1


def test_an_ack_expecting_a_reservation_is_refused_without_one(peer: Peer) -> None:
    # Faktory answers +OK to the ACK of a job not reserved (clients rely on it); a worker
    # that adds "expect":"reserved" (Werk's) learns the reservation was gone.
    assert peer.call('ACK {"jid":"none-0001"}') == OK
    reply = peer.call('ACK {"jid":"none-0001","expect":"reserved"}')
    assert error_text(reply) == "ERR Job not found none-0001"
    reply = peer.call('ACK {"jid":"none-0001","result":1,"expect":"reserved"}')
    assert error_text(reply) == "ERR Job not found none-0001"
    assert peer.call(push_line("held-0001")) == OK
    assert fetch(peer) is not None
    assert peer.call('ACK {"jid":"held-0001","expect":"reserved"}') == OK
    assert info(peer)["faktory"]["total_processed"] == 1


def test_pushb_reports_only_rejected_jobs(peer: Peer) -> None:
    jobs = [{"jid": f"bulk-{i:04d}", "jobtype": "T", "args": []} for i in range(3)]
    jobs.append({"jid": "bad-00001", "jobtype": "", "args": []})
    jobs.append({"jobtype": "T", "args": []})
    reply = peer.call("PUSHB " + json.dumps(jobs))
    assert json.loads(reply) == {  # type: ignore[arg-type]
        "bad-00001": "jobs must have a jobtype parameter",
        "": "jobs must have a reasonable jid parameter",
    }
    assert peer.call("PUSHB []") == b"{}"
    assert info(peer)["faktory"]["queues"]["default"] == 3


def test_fetch_order_priority_and_queue_list(peer: Peer) -> None:
    peer.send("".join(push_line(f"p5-{i:05d}") + "\r\n" for i in range(1000)))
    for _ in range(1000):
        assert peer.reply() == OK
    assert peer.call(push_line("urgent-001", priority=9)) == OK
    assert peer.call(push_line("other-0001", queue="other")) == OK
    assert fetch(peer)["jid"] == "urgent-001"  # type: ignore[index]
    assert fetch(peer)["jid"] == "p5-00000"  # type: ignore[index]
    assert fetch(peer, "other default")["jid"] == "other-0001"  # type: ignore[index]
    assert fetch(peer, "empty default")["jid"] == "p5-00001"  # type: ignore[index]


def test_fetch_blocks_then_answers_nil(peer: Peer) -> None:
    started = time.monotonic()
    assert fetch(peer, "nothing") is None
    assert 1.8 < time.monotonic() - started < 3.0


def test_fetch_wakes_when_a_job_arrives(peer: Peer, peer_factory: Callable[[], Peer]) -> None:
    producer = peer_factory()
    producer.hello()
    started = time.monotonic()
    peer.send("FETCH a b\r\n")
    time.sleep(0.3)
    assert producer.call(push_line("wake-0001", queue="b")) == OK
    reply = peer.reply()
    assert isinstance(reply, bytes) and json.loads(reply)["jid"] == "wake-0001"
    assert time.monotonic() - started < 1.0


def test_a_fetch_whose_client_left_takes_no_job(
    peer: Peer, peer_factory: Callable[[], Peer]
) -> None:
    # Given: a client blocked in FETCH that goes away.
    gone = peer_factory()
    gone.hello()
    gone.send("FETCH lonely\r\n")
    time.sleep(0.2)
    gone.close()
    time.sleep(0.2)
    # When: a job arrives on that queue.
    assert peer.call(push_line("left-0001", queue="lonely")) == OK
    # Then: it is not reserved for the departed client; the next FETCH gets it.
    got = fetch(peer, "lonely")
    assert got is not None and got["jid"] == "left-0001"
    assert info(peer)["faktory"]["sets"]["working"] == 1


def test_fail_puts_the_job_in_retries_at_once(peer: Peer) -> None:
    assert peer.call(push_line("fail-0001")) == OK
    fetch(peer)
    fail = {
        "jid": "fail-0001",
        "errtype": "RuntimeError",
        "message": "boom",
        "backtrace": ["a.py:1"],
    }
    assert peer.call("FAIL " + json.dumps(fail)) == OK
    doc = info(peer)["faktory"]
    assert doc["sets"]["retries"] == 1 and doc["tasks"]["Retries"]["size"] == 1
    assert doc["total_failures"] == 1 and doc["total_processed"] == 1


def test_retry_zero_discards_and_negative_goes_dead(peer: Peer) -> None:
    for jid, retry in (("zero-0001", 0), ("dead-0001", -1)):
        assert peer.call(push_line(jid, retry=retry)) == OK
        fetch(peer)
        assert peer.call(json.dumps({"jid": jid}).join(["FAIL ", ""])) == OK
    sets = info(peer)["faktory"]["sets"]
    assert sets["retries"] == 0 and sets["dead"] == 1


def test_fail_with_retry_in_sets_when_the_retry_is_due(peer: Peer) -> None:
    # Werk's extension: the worker names the delay (Faktory's first backoff is 15-44 s)
    for jid, retry_in in (("soon-0001", 1), ("late-0001", None)):
        assert peer.call(push_line(jid)) == OK
        fetch(peer)
        fail = {"jid": jid, "errtype": "Busy", "message": "try later", "retry_in": retry_in}
        assert peer.call("FAIL " + json.dumps(fail)) == OK
    assert info(peer)["faktory"]["sets"]["retries"] == 2
    for _ in range(3):  # each FETCH waits up to 2 s; the first job is due in 1 s
        if (again := fetch(peer)) is not None:
            break
    assert again is not None and again["jid"] == "soon-0001"
    assert again["failure"]["retry_count"] == 0
    assert info(peer)["faktory"]["sets"]["retries"] == 1  # the backoff one (15 s+) waits on


def test_fail_with_dead_sends_the_job_to_the_dead_set_at_once(peer: Peer) -> None:
    assert peer.call(push_line("final-001", retry=25)) == OK
    fetch(peer)
    fail = {"jid": "final-001", "errtype": "ValueError", "message": "bad input", "dead": True}
    assert peer.call("FAIL " + json.dumps(fail)) == OK
    sets = info(peer)["faktory"]["sets"]
    assert sets["dead"] == 1 and sets["retries"] == 0


def test_fail_extension_fields_of_the_wrong_type_are_refused(peer: Peer) -> None:
    assert peer.call(push_line("typed-001")) == OK
    fetch(peer)
    for extra in ({"retry_in": -1}, {"retry_in": "5"}, {"retry_in": 1.5}, {"dead": "yes"}):
        payload = json.dumps({"jid": "typed-001", "message": "x", **extra})
        assert error_text(peer.call("FAIL " + payload)).startswith("ERR invalid FAIL")
    assert info(peer)["faktory"]["sets"]["retries"] == 0  # the job is still reserved


def test_scheduled_job_is_fetchable_when_due(peer: Peer) -> None:
    at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 1))
    at += f".{int((time.time() % 1) * 1e6):06d}Z"
    pushed = time.monotonic()
    assert peer.call(push_line("sched-001", at=at)) == OK
    assert info(peer)["faktory"]["sets"]["scheduled"] == 1
    job = None
    while job is None and time.monotonic() - pushed < 3:
        job = fetch(peer)
    assert job is not None and job["jid"] == "sched-001"
    assert time.monotonic() - pushed < 1.2


def test_at_in_the_past_or_empty_means_now(peer: Peer) -> None:
    assert peer.call(push_line("past-0001", at="2001-01-01T00:00:00Z")) == OK
    assert peer.call(push_line("empty-001", at="")) == OK
    assert info(peer)["faktory"]["queues"]["default"] == 2


def test_beat_quiet_and_terminate(peer_factory: Callable[[], Peer]) -> None:
    conn = peer_factory()
    assert conn.hello(wid="worker-1", hostname="h", pid=7, labels=["x"]) == OK
    assert conn.call('BEAT {"wid":"worker-1","rss_kb":1000}') == OK
    assert conn.call('BEAT {"wid":"worker-1","current_state":"quiet"}') == b'{"state":"quiet"}'
    # States never go back.
    assert conn.call('BEAT {"wid":"worker-1"}') == b'{"state":"quiet"}'
    started = time.monotonic()
    assert conn.call(push_line("quiet-001")) == OK
    assert conn.call("FETCH default") is None
    assert time.monotonic() - started >= 1.9
    reply = conn.call('BEAT {"wid":"worker-1","current_state":"terminate"}')
    assert reply == b'{"state":"terminate"}'


def test_beat_survives_flush_and_unknown_worker_errors(peer_factory: Callable[[], Peer]) -> None:
    conn = peer_factory()
    assert conn.hello(wid="worker-2") == OK
    assert conn.call("FLUSH") == OK
    assert conn.call('BEAT {"wid":"worker-2"}') == OK
    assert error_text(conn.call('BEAT {"wid":"nobody"}')) == "ERR unknown worker nobody"


def test_info_document_shape(peer: Peer) -> None:
    doc = info(peer)
    assert doc["now"].endswith("Z") and doc["server_utc_time"].endswith("UTC")
    faktory = doc["faktory"]
    assert set(faktory["sets"]) == {"scheduled", "retries", "dead", "working"}
    for task in ("Busy", "Workers", "Scheduled", "Retries", "Dead"):
        assert "size" in faktory["tasks"][task]
    for key in ("total_failures", "total_processed", "total_enqueued", "total_queues"):
        assert isinstance(faktory[key], int)
    server = doc["server"]
    assert "Enterprise" in server["description"]
    assert server["faktory_version"].count(".") == 2
    assert {"uptime", "connections", "command_count", "used_memory_mb"} <= set(server)


def test_flush_clears_jobs(peer: Peer) -> None:
    assert peer.call(push_line("flush-001")) == OK
    assert peer.call("FLUSH") == OK
    assert info(peer)["faktory"]["total_enqueued"] == 0


def test_end_closes_without_reply(peer: Peer) -> None:
    peer.send("END\r\n")
    assert peer.closed()


def fill_retries(conn: Peer, *jids: str, **fields: Any) -> None:
    for jid in jids:
        assert conn.call(push_line(jid, **fields)) == OK
        assert fetch(conn, fields.get("queue", "default")) is not None
        assert conn.call("FAIL " + json.dumps({"jid": jid, "message": "x"})) == OK


def test_mutate_commands(peer: Peer) -> None:
    fill_retries(peer, "mut-00001", "mut-00002", "mut-00003")
    fill_retries(peer, "elephant1", jobtype="Elephant")
    sets = lambda: info(peer)["faktory"]["sets"]  # noqa: E731
    kill = {"cmd": "kill", "target": "retries", "filter": {"jids": ["mut-00001"]}}
    assert peer.call("MUTATE " + json.dumps(kill, separators=(",", ":"))) == OK
    assert sets()["retries"] == 3 and sets()["dead"] == 1
    discard = {"cmd": "discard", "target": "retries", "filter": {"regexp": "*elephant*"}}
    assert peer.call("MUTATE " + json.dumps(discard, separators=(",", ":"))) == OK
    assert sets()["retries"] == 2
    requeue = {"cmd": "requeue", "target": "retries", "filter": {"jobtype": "Test"}}
    assert peer.call("MUTATE " + json.dumps(requeue, separators=(",", ":"))) == OK
    assert sets()["retries"] == 0 and info(peer)["faktory"]["queues"]["default"] == 2
    job = fetch(peer)
    assert job is not None and job["failure"]["message"] == "x"
    assert peer.call('MUTATE {"cmd":"clear","target":"dead","filter":{}}') == OK
    assert sets()["dead"] == 0


def test_queue_pause_resume_remove_latency(peer: Peer) -> None:
    assert peer.call(push_line("q-0000001", queue="a")) == OK
    assert peer.call("QUEUE PAUSE a") == OK
    assert fetch(peer, "a") is None
    assert peer.call("QUEUE RESUME *") == OK
    latency = json.loads(peer.call("QUEUE LATENCY a nope"))  # type: ignore[arg-type]
    assert latency["nope"] == 0 and 0 <= latency["a"] < 5
    assert fetch(peer, "a")["jid"] == "q-0000001"  # type: ignore[index]
    assert peer.call(push_line("q-0000002", queue="a")) == OK
    assert peer.call("QUEUE REMOVE a") == OK
    assert "a" not in info(peer)["faktory"]["queues"]
    assert peer.call("QUEUE PAUSE unknown-queue") == OK
