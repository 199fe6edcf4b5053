"""Several ``werk server`` processes on one shared store (Redis, or one PostgreSQL schema):
the rules hold across servers, and faults of Redis or of a server lose no acknowledged
job."""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest

from tests.conftest import REDIS_URL, delete_prefix, redis_available, require
from tests.helpers import Peer, ServerProcess, push_line
from tests.storage.test_redis import RedisServer
from werk.job import TEST_MIN_RESERVE_FOR_ENV
from werk.protocol.resp import Simple

OK = Simple("OK")


@pytest.fixture(params=["redis", "postgres"])
def shared_redis(request: pytest.FixtureRequest) -> Iterator[str]:
    """A storage URL several servers share: a key prefix of its own on the test Redis, or
    a schema of its own in the session's PostgreSQL database."""
    if request.param == "postgres":
        yield request.getfixturevalue("shared_postgres")
        return
    require(redis_available(), "Redis at 127.0.0.1:6379 is not reachable")
    prefix = f"werktest:{uuid4().hex}:"
    yield f"{REDIS_URL}?prefix={prefix}"
    delete_prefix(prefix)


def start(
    tmp_path: Path, name: str, storage: str, env: dict[str, str] | None = None
) -> ServerProcess:
    return ServerProcess(tmp_path / name, extra_args=["--storage", storage], env=env).start()


def connect(server: ServerProcess, wid: str = "") -> Peer:
    peer = Peer(server.host, server.port)
    assert (peer.hello(wid=wid) if wid else peer.hello()) == OK
    return peer


def test_two_servers_hand_out_each_job_once(tmp_path: Path, shared_redis: str) -> None:
    # Given: two servers on one Redis, and 2,000 jobs pushed through both.
    servers = [start(tmp_path, "a", shared_redis), start(tmp_path, "b", shared_redis)]
    try:
        jids = [f"multi-{i:06d}" for i in range(2000)]
        for index, server in enumerate(servers):
            producer = connect(server)
            half = jids[index::2]
            batch = [{"jid": jid, "jobtype": "T", "args": []} for jid in half]
            assert producer.call("PUSHB " + json.dumps(batch)) == b"{}"
        # When: three workers on each server fetch and ACK until the queue is empty.
        acked: collections.Counter[str] = collections.Counter()
        lock = threading.Lock()

        def work(server: ServerProcess, n: int) -> None:
            conn = connect(server, wid=f"w-{server.port}-{n}")
            while (job := conn.call("FETCH default")) is not None:
                assert isinstance(job, bytes)
                jid = json.loads(job)["jid"]
                if conn.call(json.dumps({"jid": jid}).join(["ACK ", ""])) == OK:
                    with lock:
                        acked[jid] += 1

        threads = [
            threading.Thread(target=work, args=(server, n)) for server in servers for n in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        # Then: every job was acknowledged exactly once, and none was lost.
        assert set(acked) == set(jids)
        assert max(acked.values()) == 1
        info = json.loads(connect(servers[1]).call("INFO"))  # type: ignore[arg-type]
        assert info["faktory"]["total_processed"] == 2000
        assert info["faktory"]["sets"]["working"] == 0
    finally:
        for server in servers:
            server.kill()


def test_a_fetch_on_one_server_wakes_for_a_push_on_another(
    tmp_path: Path, shared_redis: str
) -> None:
    a, b = start(tmp_path, "a", shared_redis), start(tmp_path, "b", shared_redis)
    try:
        waiting, producer = connect(a), connect(b)
        waiting.send("FETCH crossing\r\n")
        time.sleep(0.3)
        pushed = time.monotonic()
        assert producer.call(push_line("cross-0001", queue="crossing")) == OK
        job = waiting.reply()
        assert isinstance(job, bytes) and json.loads(job)["jid"] == "cross-0001"
        assert time.monotonic() - pushed < 0.5
    finally:
        a.kill()
        b.kill()


def test_redis_restart_loses_no_acknowledged_job(tmp_path: Path) -> None:
    # Given: a Redis of our own with AOF fsync on every write, and a server on it.
    require(redis_available(), "Redis is needed for this test")
    redis = RedisServer(tmp_path).start()
    server = start(tmp_path, "w", f"redis://127.0.0.1:{redis.port}/0")
    try:
        conn = connect(server)
        for i in range(300):
            assert conn.call(push_line(f"aof-{i:05d}")) == OK
        # When: Redis dies and comes back on the same port and files.
        redis.kill()
        redis.start()
        # Then: the server reconnects by itself, and every acknowledged job is there.
        deadline = time.monotonic() + 20
        while True:
            reply = conn.call(push_line("after-0001"))
            if reply == OK:
                break
            assert time.monotonic() < deadline, f"no reconnect: {reply!r}"
            time.sleep(0.2)
        found = set()
        while (job := conn.call("FETCH default")) is not None:
            assert isinstance(job, bytes)
            found.add(json.loads(job)["jid"])
        assert {f"aof-{i:05d}" for i in range(300)} | {"after-0001"} == found
    finally:
        server.kill()
        redis.kill()


def test_jobs_of_a_dead_server_come_back_through_another(tmp_path: Path, shared_redis: str) -> None:
    # Given: two servers that take reservations down to 1 s (a test-only setting; Faktory's
    # minimum is 60 s); a worker on server A holds a job with a 1 s reservation.
    short = {TEST_MIN_RESERVE_FOR_ENV: "1"}
    a, b = start(tmp_path, "a", shared_redis, short), start(tmp_path, "b", shared_redis, short)
    try:
        producer = connect(b)
        assert producer.call(push_line("held-0001", reserve_for=1)) == OK
        held = connect(a, wid="worker-on-a")
        assert isinstance(held.call("FETCH default"), bytes)
        # When: server A dies; its worker reconnects to B.
        a.kill()
        moved = connect(b, wid="worker-on-a")
        # Then: once the reservation expires (A is gone, so the reaper on B must act), the
        # job is retried: it is in Retries, not lost.
        info = json.loads(moved.call("INFO"))  # type: ignore[arg-type]
        assert info["faktory"]["sets"]["working"] == 1
        requeue = {"cmd": "requeue", "target": "retries", "filter": {"jids": ["held-0001"]}}
        deadline = time.monotonic() + 30
        while True:
            # It beats as a live worker does (the job must come back by its reservation,
            # not because its worker went silent).
            assert moved.call('BEAT {"wid": "worker-on-a"}') == OK
            info = json.loads(moved.call("INFO"))  # type: ignore[arg-type]
            if info["faktory"]["sets"]["retries"] == 1:
                break
            assert time.monotonic() < deadline, info["faktory"]
            time.sleep(0.5)
        assert moved.call("MUTATE " + json.dumps(requeue)) == OK
        job = moved.call("FETCH default")
        assert isinstance(job, bytes)
        assert json.loads(job)["failure"]["errtype"] == "ReservationExpired"
    finally:
        a.kill()
        b.kill()
