"""Unique jobs through a real server, on SQLite and Redis."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from tests.enterprise.support import client_of, job, peer_of, requeue_retry, rfc3339_in, take
from tests.helpers import Peer, ServerProcess, error_text
from werk.errors import NotUniqueError
from werk.protocol.resp import Error, Reply, Simple

NOTUNIQUE = "NOTUNIQUE Job not unique"


def unique(until: str | None = None, seconds: float = 60, **fields: Any) -> dict[str, Any]:
    """A unique ``Work`` job (fresh jid, same jobtype/args/queue as every other one)."""
    custom: dict[str, Any] = {"unique_for": seconds}
    if until is not None:
        custom["unique_until"] = until
    return {**job(args=["same"], **custom), **fields}


def push(peer: Peer, payload: dict[str, Any]) -> Reply:
    return peer.call("PUSH " + json.dumps(payload))


def test_concurrent_pushes_of_one_unique_job_admit_exactly_one(
    werk_server: ServerProcess,
) -> None:
    # Given 20 connections ready to push the same unique job (each with its own jid)
    peers = [peer_of(werk_server) for _ in range(20)]
    barrier = threading.Barrier(len(peers))
    replies: list[Reply] = []
    lock = threading.Lock()

    def pusher(peer: Peer) -> None:
        payload = "PUSH " + json.dumps(unique())
        barrier.wait()
        reply = peer.call(payload)
        with lock:
            replies.append(reply)

    # When they all push at once
    threads = [threading.Thread(target=pusher, args=(peer,)) for peer in peers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # Then exactly one is accepted, the others get NOTUNIQUE
    assert replies.count(Simple("OK")) == 1
    assert replies.count(Error(NOTUNIQUE)) == 19
    assert peers[0].call("INFO") and len(replies) == 20


def test_until_success_holds_the_lock_through_fetch_and_retry(werk_server: ServerProcess) -> None:
    peer = peer_of(werk_server)
    first = unique()
    assert push(peer, first) == Simple("OK")
    assert error_text(push(peer, unique())) == NOTUNIQUE
    with client_of(werk_server) as client:
        fetched = take(client, "work")
        assert error_text(push(peer, unique())) == NOTUNIQUE  # running: still locked
        client.fail(fetched["jid"], "Boom", "will retry")
        assert error_text(push(peer, unique())) == NOTUNIQUE  # pending retry keeps it
        requeue_retry(client, fetched["jid"])
        client.ack(take(client, "work")["jid"])
    assert push(peer, unique()) == Simple("OK")  # released at success


def test_until_start_releases_at_fetch(werk_server: ServerProcess) -> None:
    peer = peer_of(werk_server)
    assert push(peer, unique("start")) == Simple("OK")
    assert error_text(push(peer, unique("start"))) == NOTUNIQUE
    with client_of(werk_server) as client:
        take(client, "work")
    assert push(peer, unique("start")) == Simple("OK")


def test_the_lock_expires_after_unique_for(werk_server: ServerProcess) -> None:
    peer = peer_of(werk_server)
    assert push(peer, unique(seconds=1)) == Simple("OK")
    assert error_text(push(peer, unique(seconds=1))) == NOTUNIQUE
    time.sleep(1.2)
    assert push(peer, unique(seconds=1)) == Simple("OK")


def test_a_scheduled_job_is_locked_for_its_delay_plus_unique_for(
    werk_server: ServerProcess,
) -> None:
    peer = peer_of(werk_server)
    assert push(peer, unique(seconds=1, at=rfc3339_in(2))) == Simple("OK")
    time.sleep(1.3)  # past unique_for, not past delay + unique_for
    assert error_text(push(peer, unique(seconds=1))) == NOTUNIQUE


def test_uniqueness_is_by_jobtype_args_and_queue(werk_server: ServerProcess) -> None:
    peer = peer_of(werk_server)
    assert push(peer, unique()) == Simple("OK")
    assert push(peer, {**unique(), "args": ["other"]}) == Simple("OK")
    assert push(peer, {**unique(), "queue": "elsewhere"}) == Simple("OK")
    assert push(peer, {**unique(), "jobtype": "Other"}) == Simple("OK")
    plain = job(args=["same"])  # no unique_for: bypasses the lock
    assert push(peer, plain) == Simple("OK")
    # Key order in args objects does not matter (canonical JSON)
    assert push(peer, {**unique(), "args": [{"a": 1, "b": 2}]}) == Simple("OK")
    assert error_text(push(peer, {**unique(), "args": [{"b": 2, "a": 1}]})) == NOTUNIQUE


def test_pushing_the_same_jid_again_is_not_a_duplicate(werk_server: ServerProcess) -> None:
    peer = peer_of(werk_server)
    payload = unique()
    assert push(peer, payload) == Simple("OK")
    assert push(peer, payload) == Simple("OK")  # a client retrying a lost reply


def test_pushb_reports_notunique_per_job(werk_server: ServerProcess) -> None:
    peer = peer_of(werk_server)
    first, duplicate, other = unique(), unique(), {**unique(), "args": ["other"]}
    reply = peer.call("PUSHB " + json.dumps([first, duplicate, other]))
    assert isinstance(reply, bytes)
    assert json.loads(reply) == {duplicate["jid"]: NOTUNIQUE}


def test_werk_client_raises_not_unique(werk_server: ServerProcess) -> None:
    with client_of(werk_server) as client:
        client.push(unique())
        with pytest.raises(NotUniqueError) as raised:
            client.push(unique())
        assert raised.value.message == "Job not unique"


def test_bad_unique_fields_are_refused(werk_server: ServerProcess) -> None:
    peer = peer_of(werk_server)
    bad_for = job(unique_for="soon")
    assert error_text(push(peer, bad_for)) == "ERR unique_for must be a number of seconds"
    bad_until = job(unique_for=5, unique_until="forever")
    assert error_text(push(peer, bad_until)).startswith("ERR unique_until must be")
