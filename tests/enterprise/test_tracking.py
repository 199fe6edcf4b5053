"""Job tracking through a real server (SQLite and Redis), and reservation extension with a
controlled clock on the same backends."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.enterprise.support import bulk_json, client_of, job, peer_of, requeue_retry, take
from tests.helpers import Peer, ServerProcess, error_text
from werk.job import format_time
from werk.manager import Manager
from werk.manager.features import default_middleware
from werk.manager.tracking import progress, tracking_of
from werk.protocol.resp import Simple
from werk.storage import open_store
from werk.storage.base import Store


def track_get(peer: Peer, jid: str) -> dict[str, Any]:
    return dict(bulk_json(peer.call(f"TRACK GET {jid}")))


def track_set(peer: Peer, **update: Any) -> None:
    assert peer.call("TRACK SET " + json.dumps(update)) == Simple("OK")


def test_states_through_the_lifecycle(werk_server: ServerProcess) -> None:
    peer = peer_of(werk_server)
    tracked = job(track=1)
    with client_of(werk_server) as client:
        client.push(tracked)
        doc = track_get(peer, tracked["jid"])
        assert doc["state"] == "enqueued" and doc["updated_at"].endswith("Z")
        assert "percent" not in doc and "desc" not in doc
        take(client, "work")
        assert track_get(peer, tracked["jid"])["state"] == "working"
        track_set(peer, jid=tracked["jid"], percent=40, desc="halfway there")
        doc = track_get(peer, tracked["jid"])
        assert (doc["state"], doc["percent"], doc["desc"]) == ("working", 40, "halfway there")
        client.fail(tracked["jid"], "Boom", "will retry")
        assert track_get(peer, tracked["jid"])["state"] == "failed"
        requeue_retry(client, tracked["jid"])
        assert take(client, "work")["jid"] == tracked["jid"]
        assert track_get(peer, tracked["jid"])["state"] == "working"
        track_set(peer, jid=tracked["jid"], percent=100)
        client.ack(tracked["jid"])
    doc = track_get(peer, tracked["jid"])
    assert list(doc) == ["jid", "percent", "desc", "state", "updated_at"]
    assert (doc["state"], doc["percent"], doc["desc"]) == ("success", 100, "halfway there")


def test_dead_and_discarded_jobs(werk_server: ServerProcess) -> None:
    peer = peer_of(werk_server)
    dying, discarded = {**job(track=1), "retry": -1}, {**job(track=True), "retry": 0}
    with client_of(werk_server) as client:
        for payload in (dying, discarded):
            client.push(payload)
            client.fail(take(client, "work")["jid"], "Boom", "no retries")
    assert track_get(peer, dying["jid"])["state"] == "dead"
    assert track_get(peer, discarded["jid"])["state"] == "failed"


def test_untracked_and_unknown_jobs(werk_server: ServerProcess) -> None:
    peer = peer_of(werk_server)
    plain = job()
    assert peer.call("PUSH " + json.dumps(plain)) == Simple("OK")
    assert track_get(peer, plain["jid"]) == {
        "jid": plain["jid"],
        "state": "unknown",
        "updated_at": "",
    }
    assert track_get(peer, "nosuchjob1")["state"] == "unknown"


def test_track_errors(werk_server: ServerProcess) -> None:
    peer = peer_of(werk_server)
    assert error_text(peer.call("TRACK FROB x")) == "ERR no such TRACK subcommand: FROB"
    assert error_text(peer.call("TRACK GET")) == "ERR TRACK GET needs an argument"
    assert error_text(peer.call("TRACK SET {oops")).startswith("ERR invalid JSON")
    assert error_text(peer.call('TRACK SET {"percent": 5}')).startswith("ERR TRACK SET needs")
    reply = peer.call('TRACK SET {"jid": "abcdefgh1", "reserve_until": "later"}')
    assert error_text(reply).startswith("ERR invalid timestamp for 'reserve_until'")


def test_reserve_until_on_the_wire_keeps_the_job_reserved(werk_server: ServerProcess) -> None:
    peer = peer_of(werk_server)
    tracked = {**job(track=1), "reserve_for": 60}
    with client_of(werk_server) as client:
        client.push(tracked)
        take(client, "work")
        until = format_time(time.time() + 3600)
        track_set(peer, jid=tracked["jid"], reserve_until=until, percent=10)
        assert bulk_json(peer.call("INFO"))["faktory"]["sets"]["working"] == 1
        client.ack(tracked["jid"])


# -- reservation extension with a controlled clock, on the test's backend ---------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path, backend: str | None) -> AsyncIterator[Store]:
    opened = open_store(backend or str(tmp_path / "db"))
    await opened.open()
    yield opened
    await opened.close()


async def test_reserve_until_extends_never_shortens_and_is_capped(store: Store) -> None:
    clock = Clock()
    manager = Manager(store, clock=clock, middleware=default_middleware(store, {}))
    tracking = tracking_of(manager)
    start = clock.now
    await manager.push({**job(track=1), "jid": "tracked-1", "reserve_for": 60})
    assert await manager.fetch(["work"], timeout=0) is not None
    # A reserve_until before the current expiry does not shorten the reservation
    shorter = {"jid": "tracked-1", "reserve_until": format_time(start + 10)}
    await tracking.set(shorter, clock.now, manager.extend)
    clock.now = start + 30
    assert len(await manager.reap_reservations()) == 0
    # reserve_until far ahead is capped at a day from now
    longer = {"jid": "tracked-1", "reserve_until": format_time(start + 10 * 86400)}
    await tracking.set(longer, clock.now, manager.extend)
    clock.now = start + 120  # past the original 60 s reservation
    assert len(await manager.reap_reservations()) == 0
    clock.now = start + 30 + 86400 - 1
    assert len(await manager.reap_reservations()) == 0
    clock.now = start + 30 + 86400 + 1
    assert len(await manager.reap_reservations()) == 1
    doc = await tracking.get("tracked-1", clock.now)
    assert doc["state"] == "failed"


async def test_progress_for_the_busy_page(store: Store) -> None:
    clock = Clock()
    manager = Manager(store, clock=clock, middleware=default_middleware(store, {}))
    tracking = tracking_of(manager)
    await tracking.set(
        {"jid": "busy-job-1", "percent": 75, "desc": "copying"}, clock.now, manager.extend
    )
    found = await progress(manager, ["busy-job-1", "busy-job-2"])
    assert found == {
        "busy-job-1": {"percent": 75, "desc": "copying", "updated_at": format_time(clock.now)}
    }
