"""Expiring jobs through a real server, on SQLite and Redis."""

from __future__ import annotations

import json
import time

from tests.enterprise.support import bulk_json, client_of, job, peer_of, rfc3339_in
from tests.helpers import ServerProcess, error_text
from werk.job import parse_time
from werk.protocol.resp import Simple


def expired_size(server: ServerProcess) -> int:
    info = bulk_json(peer_of(server).call("INFO"))
    return int(info["faktory"]["tasks"]["Expired"]["size"])


def test_an_expired_job_is_dropped_at_fetch_and_counted(werk_server: ServerProcess) -> None:
    # Given a job that expires in a second, and one that does not
    peer = peer_of(werk_server)
    doomed, kept = job(expires_in=1), job()
    assert peer.call("PUSH " + json.dumps(doomed)) == Simple("OK")
    assert peer.call("PUSH " + json.dumps(kept)) == Simple("OK")
    assert expired_size(werk_server) == 0
    # When a worker fetches after the expiry
    time.sleep(1.2)
    with client_of(werk_server) as client:
        fetched = client.fetch("work")
        # Then it gets the other job; the expired one is gone and counted
        assert fetched is not None and fetched["jid"] == kept["jid"]
        client.ack(kept["jid"])
        assert client.fetch("work") is None
    assert expired_size(werk_server) == 1
    assert bulk_json(peer.call("INFO"))["faktory"]["sets"]["working"] == 0


def test_expires_in_becomes_expires_at(werk_server: ServerProcess) -> None:
    with client_of(werk_server) as client:
        before = time.time()
        client.push(job(expires_in=300))
        fetched = client.fetch("work")
        assert fetched is not None
        custom = fetched["custom"]
        assert "expires_in" not in custom
        assert before + 299 < parse_time(custom["expires_at"]) < time.time() + 301


def test_expires_at_in_the_past_or_future(werk_server: ServerProcess) -> None:
    with client_of(werk_server) as client:
        client.push(job(expires_at=rfc3339_in(-5)))
        future = job(expires_at=rfc3339_in(60))
        client.push(future)
        fetched = client.fetch("work")
        assert fetched is not None and fetched["jid"] == future["jid"]
    assert expired_size(werk_server) == 1


def test_a_bad_expiry_is_refused(werk_server: ServerProcess) -> None:
    peer = peer_of(werk_server)
    reply = peer.call("PUSH " + json.dumps(job(expires_at="tomorrow")))
    assert error_text(reply).startswith("ERR invalid timestamp for 'expires_at'")
    reply = peer.call("PUSH " + json.dumps(job(expires_in="soon")))
    assert error_text(reply) == "ERR expires_in must be a number of seconds"


def test_an_expired_job_completes_its_batch_as_a_failure(werk_server: ServerProcess) -> None:
    with client_of(werk_server) as client:
        bid = client.batch_new({"complete": job("OnComplete", "cb")})
        doomed = job(expires_in=0.5, bid=bid, track=1)
        client.push(doomed)
        client.batch_commit(bid)
        time.sleep(0.7)
        assert client.fetch("work") is None
        status = client.batch_status(bid)
        assert (status["pending"], status["failed"], status["complete_st"]) == (1, 1, "1")
        assert client.track_get(doomed["jid"])["state"] == "failed"
