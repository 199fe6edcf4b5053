"""Batches through a real server, on SQLite and Redis: callbacks, ordering, children, errors."""

from __future__ import annotations

import json
from typing import Any

from pyfaktory import Client as PyClient

from tests.enterprise.support import bulk_json, client_of, job, peer_of, requeue_retry, take
from tests.helpers import ServerProcess, error_text
from werk.client import Client
from werk.errors import CommandError
from werk.protocol.resp import Simple


def new_batch(client: Client, **spec: Any) -> str:
    """Create a batch whose callbacks go to the ``cb`` queue."""
    spec.setdefault("complete", job("OnComplete", "cb"))
    spec.setdefault("success", job("OnSuccess", "cb"))
    return client.batch_new(spec)


def states(client: Client, bid: str) -> tuple[int, int, str, str]:
    """Return (pending, failed, complete_st, success_st) of a batch."""
    st = client.batch_status(bid)
    return st["pending"], st["failed"], st["complete_st"], st["success_st"]


def callback(client: Client, bid: str, which: str) -> dict[str, Any]:
    """Fetch the next callback job and check it is ``which`` of batch ``bid``."""
    cb = take(client, "cb")
    assert cb["custom"]["_bid"] == bid and cb["custom"]["_cb"] == which, cb
    return cb


def test_complete_after_every_job_ran_success_after_all_succeeded(
    werk_server: ServerProcess,
) -> None:
    with client_of(werk_server) as client:
        # Given a committed batch of three jobs
        bid = new_batch(client, description="three jobs")
        assert bid.startswith("b-")
        for n in range(3):
            client.push(job(args=[n], bid=bid))
        client.batch_commit(bid)
        status = client.batch_status(bid)
        assert status["bid"] == bid and status["description"] == "three jobs"
        assert (status["total"], status["pending"], status["failed"]) == (3, 3, 0)
        assert (status["complete_st"], status["success_st"]) == ("", "")
        assert status["created_at"].endswith("Z") and "parent_bid" not in status
        # When one job succeeds, one fails and the last succeeds
        client.ack(take(client, "work")["jid"])
        failing = take(client, "work")
        client.fail(failing["jid"], "Boom", "first try fails")
        assert states(client, bid) == (2, 1, "", "")
        client.ack(take(client, "work")["jid"])
        # Then complete fires (every job ran once), success does not
        assert states(client, bid) == (1, 1, "1", "")
        client.ack(callback(client, bid, "complete")["jid"])
        assert states(client, bid) == (1, 1, "2", "")
        assert client.fetch("cb") is None
        # When the failed job succeeds on its retry, success fires
        requeue_retry(client, failing["jid"])
        retried = take(client, "work")
        assert retried["jid"] == failing["jid"] and "failure" in retried
        client.ack(retried["jid"])
        assert states(client, bid) == (0, 0, "2", "1")
        client.ack(callback(client, bid, "success")["jid"])
        assert states(client, bid) == (0, 0, "2", "2")


def test_success_waits_for_the_complete_callback_to_succeed(werk_server: ServerProcess) -> None:
    with client_of(werk_server) as client:
        bid = new_batch(client)
        client.push(job(bid=bid))
        client.batch_commit(bid)
        client.ack(take(client, "work")["jid"])
        assert states(client, bid) == (0, 0, "1", "")
        # The complete callback fails: success stays pending, complete stays "1"
        complete = callback(client, bid, "complete")
        client.fail(complete["jid"], "Boom", "callback failed")
        assert states(client, bid) == (0, 0, "1", "")
        assert client.fetch("cb") is None
        # Its retry succeeds: now success is enqueued
        requeue_retry(client, complete["jid"])
        client.ack(take(client, "cb")["jid"])
        assert states(client, bid) == (0, 0, "2", "1")
        client.ack(callback(client, bid, "success")["jid"])
        assert states(client, bid) == (0, 0, "2", "2")


def test_a_job_that_dies_completes_the_batch_but_it_never_succeeds(
    werk_server: ServerProcess,
) -> None:
    with client_of(werk_server) as client:
        bid = new_batch(client)
        client.push({**job(bid=bid), "retry": -1})
        client.batch_commit(bid)
        client.fail(take(client, "work")["jid"], "Boom", "straight to dead")
        assert states(client, bid) == (1, 1, "1", "")
        client.ack(callback(client, bid, "complete")["jid"])
        assert states(client, bid) == (1, 1, "2", "")
        assert client.fetch("cb") is None


def test_child_batches_hold_their_parent_back(werk_server: ServerProcess) -> None:
    with client_of(werk_server) as client:
        parent = new_batch(client, description="parent")
        client.push(job(bid=parent))
        child = new_batch(client, parent_bid=parent, description="child")
        client.push(job(queue="kids", bid=child))
        client.batch_commit(child)
        client.batch_commit(parent)
        assert client.batch_status(child)["parent_bid"] == parent
        # The parent's own job is done, but its child is not: the parent waits
        client.ack(take(client, "work")["jid"])
        assert states(client, parent) == (0, 0, "", "")
        # The child's job is done: the child completes, then the parent
        client.ack(take(client, "kids")["jid"])
        assert states(client, child) == (0, 0, "1", "")
        assert states(client, parent) == (0, 0, "1", "")
        callbacks = {cb["custom"]["_bid"]: cb for cb in (take(client, "cb"), take(client, "cb"))}
        assert set(callbacks) == {parent, child}
        # The parent's success waits for the child's success
        client.ack(callbacks[parent]["jid"])
        assert states(client, parent) == (0, 0, "2", "")
        client.ack(callbacks[child]["jid"])
        assert states(client, child) == (0, 0, "2", "1")
        assert states(client, parent) == (0, 0, "2", "1")
        successes = {take(client, "cb")["custom"]["_bid"], take(client, "cb")["custom"]["_bid"]}
        assert successes == {parent, child}


def test_an_empty_committed_batch_fires_at_once(werk_server: ServerProcess) -> None:
    with client_of(werk_server) as client:
        bid = new_batch(client)
        client.batch_commit(bid)
        assert states(client, bid) == (0, 0, "1", "")
        client.ack(callback(client, bid, "complete")["jid"])
        assert states(client, bid) == (0, 0, "2", "1")
        # Without a complete callback, the complete step is done at once
        only_success = client.batch_new({"success": job("OnSuccess", "cb")})
        client.batch_commit(only_success)
        assert states(client, only_success) == (0, 0, "2", "1")


def test_nothing_fires_before_commit_and_reopen_adds_jobs(werk_server: ServerProcess) -> None:
    with client_of(werk_server) as client:
        bid = new_batch(client)
        client.push(job(bid=bid))
        client.ack(take(client, "work")["jid"])
        assert states(client, bid) == (0, 0, "", "")
        assert client.batch_open(bid) == bid  # reopen before commit
        client.batch_commit(bid)
        assert client.batch_open(bid) == bid  # and after commit, after callbacks fired
        client.push(job(bid=bid))
        client.batch_commit(bid)
        assert client.batch_status(bid)["total"] == 2


def test_reopened_batch_waits_for_the_added_jobs(werk_server: ServerProcess) -> None:
    with client_of(werk_server) as client:
        bid = new_batch(client)
        client.push(job(bid=bid))
        client.batch_commit(bid)
        assert client.batch_open(bid) == bid
        client.push(job(bid=bid))
        client.batch_commit(bid)
        client.ack(take(client, "work")["jid"])
        assert states(client, bid) == (1, 0, "", "")
        client.ack(take(client, "work")["jid"])
        assert states(client, bid) == (0, 0, "1", "")


def test_batch_errors_on_the_wire(werk_server: ServerProcess) -> None:
    peer = peer_of(werk_server)
    for sub in ("STATUS", "OPEN", "COMMIT"):
        assert error_text(peer.call(f"BATCH {sub} b-nope")) == "ERR no such batch b-nope"
    push = "PUSH " + json.dumps(job(bid="b-nope"))
    assert error_text(peer.call(push)) == "ERR no such batch b-nope"
    assert error_text(peer.call("BATCH NEW {}")).startswith("ERR a batch needs a success")
    assert error_text(peer.call('BATCH NEW {"bid":"b-mine","success":{}}')).startswith("ERR")
    assert error_text(peer.call("BATCH NEW {oops")).startswith("ERR invalid JSON")
    assert error_text(peer.call("BATCH FROB x")) == "ERR no such BATCH subcommand: FROB"
    assert error_text(peer.call("BATCH STATUS")) == "ERR BATCH STATUS needs an argument"
    spec = {"bid": "", "parent_bid": "b-gone", "success": job("S", "cb")}
    assert error_text(peer.call("BATCH NEW " + json.dumps(spec))) == "ERR no such batch b-gone"


def test_raw_wire_replies(werk_server: ServerProcess) -> None:
    peer = peer_of(werk_server)
    # Go's client sends a blank bid and a null callback
    spec = {"bid": "", "description": "raw", "success": job("S", "cb"), "complete": None}
    bid = peer.call("BATCH NEW " + json.dumps(spec))
    assert isinstance(bid, bytes) and bid.startswith(b"b-")
    assert peer.call(f"BATCH OPEN {bid.decode()}") == bid
    assert peer.call(f"BATCH COMMIT {bid.decode()}") == Simple("OK")
    status = bulk_json(peer.call(f"BATCH STATUS {bid.decode()}"))
    assert list(status) == [
        "bid",
        "description",
        "created_at",
        "total",
        "pending",
        "failed",
        "complete_st",
        "success_st",
    ]


def pyfaktory_status(py: PyClient, bid: str) -> dict[str, Any]:
    """Read BATCH STATUS through pyfaktory, which returns the raw bulk reply."""
    raw = py._batch_status(bid)
    assert raw.startswith("$"), raw
    header, _, body = raw.partition("\r\n")
    assert int(header[1:]) == len(body.encode())
    return dict(json.loads(body))


def test_pyfaktory_reads_batch_status(werk_server: ServerProcess) -> None:
    with client_of(werk_server) as client:
        bid = new_batch(client, description="seen by pyfaktory")
        client.push(job(bid=bid))
    py = PyClient(faktory_url=werk_server.url, role="producer")
    py.connect()
    try:
        status = pyfaktory_status(py, bid)
        assert status["bid"] == bid and status["total"] == 1 and status["pending"] == 1
        assert status["description"] == "seen by pyfaktory"
        py._batch_commit(bid)
        assert pyfaktory_status(py, bid)["complete_st"] == ""
    finally:
        py.disconnect()


def test_unknown_batch_raises_command_error_in_werk_client(werk_server: ServerProcess) -> None:
    with client_of(werk_server) as client:
        try:
            client.batch_status("b-missing")
        except CommandError as exc:
            assert exc.message == "no such batch b-missing"
        else:
            raise AssertionError("expected an error")
