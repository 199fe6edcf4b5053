"""Two ``werk server`` processes sharing one Redis or one PostgreSQL schema: every Enterprise
rule holds across them."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from uuid import uuid4

import pytest

from tests.conftest import REDIS_URL, delete_prefix, redis_available, require
from tests.enterprise.support import bulk_json, client_of, job, peer_of, take
from tests.helpers import ServerProcess
from werk.protocol.resp import Error, Reply, Simple

BATCHES = 8
JOBS_PER_BATCH = 6
WORKERS_PER_SERVER = 4


@pytest.fixture(params=["redis", "postgres"])
def backend(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """Redis or PostgreSQL: the servers of a test share one key prefix or one schema."""
    if request.param == "postgres":
        yield request.getfixturevalue("shared_postgres")
        return
    require(redis_available(), "Redis at 127.0.0.1:6379 is not reachable")
    prefix = f"werktest:{uuid4().hex}:"
    yield f"{REDIS_URL}?prefix={prefix}"
    delete_prefix(prefix)


@pytest.fixture
def servers(werk_server_factory: Callable[..., ServerProcess]) -> list[ServerProcess]:
    return [werk_server_factory(), werk_server_factory()]


def drain(servers: list[ServerProcess], queue: str) -> list[dict[str, Any]]:
    """Fetch and ACK every job of ``queue`` with workers on every server at once."""
    done: list[dict[str, Any]] = []
    lock = threading.Lock()

    def worker(server: ServerProcess) -> None:
        with client_of(server) as client:
            while (fetched := client.fetch(queue)) is not None:
                client.ack(fetched["jid"])
                with lock:
                    done.append(fetched)

    threads = [
        threading.Thread(target=worker, args=(server,))
        for server in servers
        for _ in range(WORKERS_PER_SERVER)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return done


def test_batch_callbacks_fire_exactly_once_across_servers(servers: list[ServerProcess]) -> None:
    # Given batches built through both servers, committed through the other one
    bids = []
    with client_of(servers[0]) as first, client_of(servers[1]) as second:
        for _ in range(BATCHES):
            spec = {"complete": job("OnComplete", "cb"), "success": job("OnSuccess", "cb")}
            bid = first.batch_new(spec)
            for n in range(JOBS_PER_BATCH):
                (first, second)[n % 2].push(job(args=[n], bid=bid))
            second.batch_commit(bid)
            bids.append(bid)
        # When workers on both servers run every job concurrently
        assert len(drain(servers, "work")) == BATCHES * JOBS_PER_BATCH
        # Then each batch's complete callback, and once it succeeded (workers ACK it as
        # they go) its success callback, was enqueued exactly once
        callbacks = drain(servers, "cb")
        fired = Counter((cb["custom"]["_bid"], cb["custom"]["_cb"]) for cb in callbacks)
        expected = {(bid, which): 1 for bid in bids for which in ("complete", "success")}
        assert fired == expected
        for bid in bids:
            status = (first, second)[bids.index(bid) % 2].batch_status(bid)
            assert (status["total"], status["pending"], status["failed"]) == (6, 0, 0)
            assert (status["complete_st"], status["success_st"]) == ("2", "2")


def test_one_unique_job_across_servers(servers: list[ServerProcess]) -> None:
    payloads = [job(args=["same"], unique_for=60) for _ in range(20)]
    peers = [peer_of(servers[n % 2]) for n in range(len(payloads))]
    barrier = threading.Barrier(len(peers))
    replies: list[Reply] = []
    lock = threading.Lock()

    def pusher(n: int) -> None:
        line = "PUSH " + json.dumps(payloads[n])
        barrier.wait()
        reply = peers[n].call(line)
        with lock:
            replies.append(reply)

    threads = [threading.Thread(target=pusher, args=(n,)) for n in range(len(peers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert replies.count(Simple("OK")) == 1
    assert replies.count(Error("NOTUNIQUE Job not unique")) == 19


def test_tracking_is_shared(servers: list[ServerProcess]) -> None:
    tracked = job(track=1)
    with client_of(servers[0]) as first, client_of(servers[1]) as second:
        first.push(tracked)
        fetched = second.fetch("work")
        assert fetched is not None
        first.track_set(tracked["jid"], percent=50, desc="half")
        doc = second.track_get(tracked["jid"])
        assert (doc["state"], doc["percent"]) == ("working", 50)
        second.ack(tracked["jid"])
        assert first.track_get(tracked["jid"])["state"] == "success"


def test_a_wait_on_one_server_sees_the_ack_on_another(
    werk_server_factory: Callable[..., ServerProcess],
) -> None:
    # Given two servers on one Redis and a job that asks for its result
    first, second = werk_server_factory(), werk_server_factory()
    asking = job(result_ttl=60)
    waiter = peer_of(second)
    replies: list[bytes] = []
    with client_of(first) as producer:
        producer.push(asking)
        # When a client waits on the second server while a worker acks on the first
        thread = threading.Thread(
            target=lambda: replies.append(
                waiter.call("RESULT " + json.dumps({"jid": asking["jid"], "timeout": 30}))
            )
        )
        thread.start()
        time.sleep(0.5)
        fetched = take(producer, "work")
        acked = time.monotonic()
        producer.ack(fetched["jid"], result={"answer": 42})
        thread.join(30)
    # Then the wait returns the result soon after, not at its timeout
    returned = time.monotonic() - acked
    doc = bulk_json(replies[0])
    assert doc["state"] == "succeeded" and doc["result"] == {"answer": 42}
    assert returned < 5
