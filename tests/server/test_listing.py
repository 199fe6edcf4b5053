"""JOBS (Werk's extension): pages of the retry, scheduled and dead sets, of a queue and of
the working set (the reservations), and PROCESSES (the worker processes), on SQLite, Redis
and PostgreSQL (one server per backend, FLUSHed before each test)."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.helpers import Peer, ServerProcess, error_text, push_line
from werk.job import parse_time
from werk.manager.retry import DEAD_TTL
from werk.protocol.resp import Simple

OK = Simple("OK")


def jobs(peer: Peer, **payload: Any) -> dict[str, Any]:
    reply = peer.call("JOBS " + json.dumps(payload))
    assert isinstance(reply, bytes), reply
    doc: dict[str, Any] = json.loads(reply)
    return doc


def jids(doc: dict[str, Any]) -> list[str]:
    return [item["jid"] for item in doc["jobs"]]


def to_retries(peer: Peer, jid: str, **fields: Any) -> None:
    queue = fields.get("queue", "default")
    assert peer.call(push_line(jid, **fields)) == OK
    reply = peer.call(f"FETCH {queue}")
    assert isinstance(reply, bytes) and json.loads(reply)["jid"] == jid
    assert peer.call("FAIL " + json.dumps({"jid": jid, "message": "boom"})) == OK


def test_scheduled_set_is_paged_due_soonest_first(flushed_peer: Peer) -> None:
    peer = flushed_peer
    for n in (3, 1, 4, 2, 5):
        at = f"2099-01-0{n}T00:00:00.5Z"
        assert peer.call(push_line(f"sched-{n:04d}", at=at, args=[n])) == OK
    first = jobs(peer, target="scheduled", limit=2)
    assert jids(first) == ["sched-0001", "sched-0002"]
    assert first["total"] == 5 and first["offset"] == 0 and first["next_offset"] == 2
    entry = first["jobs"][0]
    assert entry["at"] == "2099-01-01T00:00:00.5Z"
    assert entry["job"]["jid"] == "sched-0001" and entry["job"]["args"] == [1]
    assert entry["job"]["at"] == "2099-01-01T00:00:00.5Z"
    second = jobs(peer, target="scheduled", offset=2, limit=2)
    assert jids(second) == ["sched-0003", "sched-0004"] and second["next_offset"] == 4
    last = jobs(peer, target="scheduled", offset=4, limit=2)
    assert jids(last) == ["sched-0005"] and last["next_offset"] is None
    # A full page that ends the set says so: no empty page to read after it.
    exact = jobs(peer, target="scheduled", offset=3, limit=2)
    assert jids(exact) == ["sched-0004", "sched-0005"] and exact["next_offset"] is None
    past = jobs(peer, target="scheduled", offset=50)
    assert past["jobs"] == [] and past["next_offset"] is None and past["total"] == 5
    everything = jobs(peer, target="scheduled")  # no filter: the whole set, limit 100
    assert len(everything["jobs"]) == 5


def test_retry_and_dead_sets_with_their_times(flushed_peer: Peer) -> None:
    peer = flushed_peer
    to_retries(peer, "retry-0001", retry=5)
    retry = jobs(peer, target="retries")
    assert jids(retry) == ["retry-0001"] and retry["total"] == 1
    job = retry["jobs"][0]["job"]
    assert job["failure"]["message"] == "boom" and job["failure"]["retry_count"] == 0
    assert retry["jobs"][0]["at"] == job["failure"]["next_at"]
    for jid in ("dead-0001", "dead-0002", "dead-0003"):
        before = time.time()
        to_retries(peer, jid, retry=-1)
        time.sleep(0.01)
    dead = jobs(peer, target="dead")
    assert jids(dead) == ["dead-0003", "dead-0002", "dead-0001"]  # most recent death first
    # Every way of filtering keeps that order: the store's (jobtype), by jid, by glob.
    for flt in ({"jobtype": "Test"}, {"jids": jids(dead)}, {"regexp": "*dead-*"}):
        assert jids(jobs(peer, target="dead", filter=flt)) == jids(dead), flt
    assert jids(jobs(peer, target="dead", filter={"regexp": "*dead-*"}, offset=1)) == [
        "dead-0002",
        "dead-0001",
    ]
    died = parse_time(dead["jobs"][0]["at"])
    assert before - 1 <= died <= time.time() + 1  # when it died, not when it expires
    assert died < time.time() + DEAD_TTL / 2


def test_filters_list_what_mutate_acts_on(flushed_peer: Peer) -> None:
    peer = flushed_peer
    for n in range(6):
        jobtype = "Elephant" if n % 2 else "Mouse"
        to_retries(peer, f"filt-{n:04d}", jobtype=jobtype, args=[f"size-{n}"], retry=5)
    filters: list[dict[str, Any]] = [
        {"jobtype": "Elephant"},
        {"jids": ["filt-0000", "filt-0003", "not-there-at-all"]},
        {"jids": []},
        {"regexp": "*size-[0-3]*"},
        {"regexp": "*size-[0-3]*", "jobtype": "Mouse"},
        {"jids": ["filt-0001", "filt-0002"], "jobtype": "Elephant"},
        {"jobtype": "Elephant", "regexp": None, "jids": None},
    ]
    expected = [
        ["filt-0001", "filt-0003", "filt-0005"],
        ["filt-0000", "filt-0003"],
        [],
        ["filt-0000", "filt-0001", "filt-0002", "filt-0003"],
        ["filt-0000", "filt-0002"],
        ["filt-0001"],
        ["filt-0001", "filt-0003", "filt-0005"],
    ]
    for flt, want in zip(filters, expected, strict=True):
        page = jobs(peer, target="retries", filter=flt)
        assert sorted(jids(page)) == want, flt
        assert page["total"] == len(want) and page["next_offset"] is None
        paged = jobs(peer, target="retries", filter=flt, offset=1, limit=1)
        assert jids(paged) == jids(page)[1:2], flt
    # What JOBS lists is what MUTATE with the same filter acts on.
    flt = {"regexp": "*size-[2-5]*", "jobtype": "Elephant"}
    listed = jids(jobs(peer, target="retries", filter=flt))
    assert (
        peer.call("MUTATE " + json.dumps({"cmd": "kill", "target": "retries", "filter": flt})) == OK
    )
    assert sorted(jids(jobs(peer, target="dead"))) == sorted(listed) == ["filt-0003", "filt-0005"]


def test_queue_in_fetch_order(flushed_peer: Peer) -> None:
    peer = flushed_peer
    before = time.time()
    for n in range(3):
        assert peer.call(push_line(f"queued-{n:04d}", queue="mail", args=[n])) == OK
    assert peer.call(push_line("urgent-0001", queue="mail", priority=9)) == OK
    page = jobs(peer, target="queue", queue="mail", limit=3)
    assert jids(page) == ["urgent-0001", "queued-0000", "queued-0001"]
    assert page["total"] == 4 and page["next_offset"] == 3 and page["target"] == "queue"
    assert before - 1 <= parse_time(page["jobs"][1]["at"]) <= time.time() + 1
    rest = jobs(peer, target="queue", queue="mail", offset=3)
    assert jids(rest) == ["queued-0002"] and rest["next_offset"] is None
    empty = jobs(peer, target="queue", queue="nothing-here")
    assert empty == {"target": "queue", "total": 0, "offset": 0, "next_offset": None, "jobs": []}
    # Listing changes nothing: the jobs are still there in the same order.
    reply = peer.call("FETCH mail")
    assert isinstance(reply, bytes) and json.loads(reply)["jid"] == "urgent-0001"


def test_errors(flushed_peer: Peer) -> None:
    peer = flushed_peer
    assert error_text(peer.call("JOBS")) == "ERR JOBS needs an argument"
    assert error_text(peer.call("JOBS dead")) == "ERR JOBS needs a JSON object"
    text = error_text(peer.call('JOBS {"target":"graveyard"}'))
    assert text == "ERR JOBS target must be one of scheduled, retries, dead, queue, working"


def test_working_lists_the_jobs_running_now(
    flushed_server: ServerProcess, flushed_peer: Peer
) -> None:
    # Given a worker process that fetched three jobs (reserved 300 s, 100 s and 200 s) and
    # one job still waiting in its queue
    peer = flushed_peer
    worker = Peer(flushed_server.host, flushed_server.port)
    assert worker.hello(wid="wid-lister-01", hostname="box", pid=42) == OK
    pushed = [
        ("run-0001", "Resize", "img", 300),
        ("run-0002", "SendEmail", "mail", 100),
        ("run-0003", "SendEmail", "img", 200),
    ]
    for jid, jobtype, queue, reserve_for in pushed:
        line = push_line(jid, jobtype=jobtype, queue=queue, reserve_for=reserve_for, args=[jid])
        assert peer.call(line) == OK
    assert peer.call(push_line("wait-0001", queue="img")) == OK
    before = time.time()
    for jid, _, queue, _ in pushed:
        reply = worker.call(f"FETCH {queue}")
        assert isinstance(reply, bytes) and json.loads(reply)["jid"] == jid
    # When the working set is listed: soonest expiry first, with the reservation's fields
    page = jobs(peer, target="working")
    assert jids(page) == ["run-0002", "run-0003", "run-0001"]
    assert page["total"] == 3 and page["next_offset"] is None and page["target"] == "working"
    for item, reserve_for in zip(page["jobs"], (100, 200, 300), strict=True):
        reserved, expires = parse_time(item["reserved_at"]), parse_time(item["expires_at"])
        assert before - 1 <= reserved <= time.time() + 1 and item["at"] == item["reserved_at"]
        assert abs(expires - reserved - reserve_for) < 1
        assert item["wid"] == "wid-lister-01"
        job = item["job"]
        assert job["jid"] == item["jid"] and job["args"] == [item["jid"]]
        assert before - 1 <= parse_time(job["enqueued_at"]) <= reserved + 1  # as handed out
    # Paged like every other target
    first = jobs(peer, target="working", limit=2)
    assert jids(first) == ["run-0002", "run-0003"] and first["next_offset"] == 2
    rest = jobs(peer, target="working", offset=2, limit=2)
    assert jids(rest) == ["run-0001"] and rest["next_offset"] is None and rest["total"] == 3
    # Filtered by MUTATE's criteria and by the queue the job was fetched from
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"filter": {"jobtype": "SendEmail"}}, ["run-0002", "run-0003"]),
        ({"filter": {"jids": ["run-0001", "run-0003", "wait-0001"]}}, ["run-0003", "run-0001"]),
        ({"filter": {"jids": []}}, []),
        ({"filter": {"regexp": "*run-000[12]*"}}, ["run-0002", "run-0001"]),
        ({"queue": "img"}, ["run-0003", "run-0001"]),
        ({"queue": "img", "filter": {"jobtype": "SendEmail"}}, ["run-0003"]),
        ({"queue": "nothing-here"}, []),
    ]
    for where, want in cases:
        listed = jobs(peer, target="working", **where)
        assert jids(listed) == want and listed["total"] == len(want), where
        paged = jobs(peer, target="working", offset=1, limit=1, **where)
        assert jids(paged) == want[1:2] and paged["total"] == len(want), where
        assert paged["next_offset"] == (2 if len(want) > 2 else None), where
    # Then an acknowledged job is gone from the listing; the others still run
    assert worker.call('ACK {"jid":"run-0003"}') == OK
    after = jobs(peer, target="working")
    assert jids(after) == ["run-0002", "run-0001"] and after["total"] == 2
    assert jids(jobs(peer, target="working", filter={"jids": ["run-0003"]})) == []
    worker.close()


def test_working_refuses_what_it_cannot_read_exactly(flushed_peer: Peer) -> None:
    peer = flushed_peer
    refused = {
        '{"target":"working","filter":{}}': "ERR invalid filter: names no criterion",
        '{"target":"working","filter":null}': "ERR invalid filter: names no criterion",
        '{"target":"working","filter":{"wid":"w"}}': "ERR invalid filter: unknown key 'wid'",
        '{"target":"working","queue":"no spaces"}': "ERR JOBS queue must be a queue name",
        '{"target":"working","queue":""}': "ERR JOBS queue must be a queue name",
        '{"target":"working","limit":0}': "ERR JOBS limit must be a whole number",
        '{"target":"dead","queue":"q1"}': "ERR JOBS queue applies to targets queue and working",
    }
    for payload, error in refused.items():
        assert error_text(peer.call("JOBS " + payload)).startswith(error), payload


def processes(peer: Peer) -> dict[str, dict[str, Any]]:
    reply = peer.call("PROCESSES")
    assert isinstance(reply, bytes), reply
    return {doc["wid"]: doc for doc in json.loads(reply)["processes"]}


def test_processes_lists_the_worker_processes(
    flushed_server: ServerProcess, flushed_peer: Peer
) -> None:
    # Given two worker processes, one running a job and then told to go quiet
    peer = flushed_peer
    before = time.time()
    busy = Peer(flushed_server.host, flushed_server.port)
    assert busy.hello(wid="wid-procs-busy", hostname="box-1", pid=101, labels=["py"]) == OK
    idle = Peer(flushed_server.host, flushed_server.port)
    assert idle.hello(wid="wid-procs-idle", hostname="box-2", pid=202) == OK
    assert peer.call(push_line("proc-job-0001")) == OK
    reply = busy.call("FETCH default")
    assert isinstance(reply, bytes) and json.loads(reply)["jid"] == "proc-job-0001"
    reply = busy.call('BEAT {"wid":"wid-procs-busy","current_state":"quiet","rss_kb":2048}')
    assert isinstance(reply, bytes) and json.loads(reply) == {"state": "quiet"}
    # When PROCESSES is read: each process with what it said, its state and busy count
    listed = processes(peer)
    one, two = listed["wid-procs-busy"], listed["wid-procs-idle"]
    assert (one["hostname"], one["pid"], one["labels"], one["state"]) == (
        "box-1",
        101,
        ["py"],
        "quiet",
    )
    assert (one["busy"], one["busy_capped"], one["rss_kb"], one["connections"]) == (
        1,
        False,
        2048,
        1,
    )
    assert (two["hostname"], two["pid"], two["labels"], two["state"]) == ("box-2", 202, [], "")
    assert two["busy"] == 0
    for doc in (one, two):
        started, beat = parse_time(doc["started_at"]), parse_time(doc["last_beat"])
        assert before - 1 <= started <= beat <= time.time() + 1
    order = [wid for wid in listed if wid in ("wid-procs-busy", "wid-procs-idle")]
    assert order == ["wid-procs-idle", "wid-procs-busy"]  # the most recently started first
    # Then the ACK frees it, and a process whose connections closed is gone
    assert busy.call('ACK {"jid":"proc-job-0001"}') == OK
    assert processes(peer)["wid-procs-busy"]["busy"] == 0
    idle.close()
    deadline = time.time() + 10
    while "wid-procs-idle" in processes(peer) and time.time() < deadline:
        time.sleep(0.02)
    assert "wid-procs-idle" not in processes(peer)
    assert error_text(peer.call("PROCESSES all")) == "ERR PROCESSES takes no argument"
    busy.close()
