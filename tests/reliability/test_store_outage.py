"""Store outages under a running ``werk server`` (a private, restartable redis-server with
AOF always; a PostgreSQL schema whose table is taken away for a while): no job is stranded,
dropped or run twice for them.

A FETCH its client gave up during the outage hands the job it reserved late back at once;
a worker's ACK refused with ``-ERR storage error`` is sent again until it lands. Without
either, the job waits reserved for nobody until the reaper fails it (``ReservationExpired``)
and, with ``retry`` 0, discards it unrun, or runs it a second time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests import pg
from tests.helpers import Peer, ServerProcess, push_line
from tests.storage.test_redis import RedisServer
from werk.client import Client, Job, Worker
from werk.protocol.resp import Simple

OK = Simple("OK")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server subprocess of this test's own, restartable on its port."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.kill()


@pytest.fixture
def werk_on_redis(tmp_path: Path, redis_server: RedisServer) -> Iterator[ServerProcess]:
    storage = f"redis://127.0.0.1:{redis_server.port}/0?prefix=outage:"
    server = ServerProcess(tmp_path / "data", extra_args=["--storage", storage])
    yield server.start()
    server.kill()


def fetch_jids(server: ServerProcess, queue: str, want: int, within: float) -> set[str]:
    """FETCH ``queue`` until ``want`` distinct jobs came or ``within`` seconds passed."""
    peer = Peer(server.host, server.port)
    assert peer.hello() == OK
    jids: set[str] = set()
    deadline = time.monotonic() + within
    while len(jids) < want and time.monotonic() < deadline:
        reply = peer.call(f"FETCH {queue}")
        if isinstance(reply, bytes):
            jids.add(json.loads(reply)["jid"])
    return jids


@pytest.mark.redis
def test_a_fetch_given_up_during_an_outage_strands_no_job(
    werk_on_redis: ServerProcess, redis_server: RedisServer
) -> None:
    # Given three jobs with no retries in a queue nobody reads
    producer = Peer(werk_on_redis.host, werk_on_redis.port)
    assert producer.hello() == OK
    pushed = {f"orphan-job-{i}" for i in range(3)}
    for jid in sorted(pushed):
        assert producer.call(push_line(jid, queue="orph2", retry=0, reserve_for=60)) == OK

    # When Redis dies, a client's FETCH waits on it and the client gives up, then Redis
    # comes back (the server's FETCH then reserves a job for the gone client)
    redis_server.kill()
    quitter = Peer(werk_on_redis.host, werk_on_redis.port)
    assert quitter.hello() == OK
    quitter.send("FETCH orph2\r\n")
    time.sleep(1.5)
    quitter.close()
    time.sleep(1.0)
    redis_server.start()

    # Then every job is still to be had, at once: none waits reserved for nobody
    assert fetch_jids(werk_on_redis, "orph2", 3, within=10.0) == pushed


@pytest.fixture
def werk_on_postgres(tmp_path: Path, shared_postgres: str) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "data", extra_args=["--storage", shared_postgres])
    yield server.start()
    server.kill()


def rename_working(storage: str, old: str, new: str) -> None:
    """Rename the schema's ``working`` table: every statement on it fails meanwhile, as
    when PostgreSQL is cut (the server answers ``-ERR storage error`` at once)."""
    schema = storage.rpartition("schema=")[2]
    with psycopg.connect(pg.pg_url(), autocommit=True) as conn:
        conn.execute(f"ALTER TABLE {schema}.{old} RENAME TO {new}")


async def test_an_ack_refused_for_a_storage_error_is_sent_again(
    werk_on_postgres: ServerProcess, shared_postgres: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a worker running a job that may not be retried
    runs: list[str] = []
    started, proceed = threading.Event(), threading.Event()
    worker = Worker(werk_on_postgres.url, concurrency=1, queues=["acked"])

    @worker.register
    def slow(name: str) -> None:
        runs.append(name)
        started.set()
        proceed.wait(30)

    with Client(werk_on_postgres.url) as client:
        client.push(Job("slow", args=["once"], queue="acked", retry=0, reserve_for=60))
    task = asyncio.create_task(worker.run_async())
    try:
        assert await asyncio.to_thread(started.wait, 15)

        # When the store fails as the job ends, so its ACK is refused with -ERR storage
        # error, and the store works again a little later
        rename_working(shared_postgres, "working", "working_cut")
        with caplog.at_level(logging.INFO, "werk.worker"):
            proceed.set()
            deadline = time.monotonic() + 30
            while b"storage error in ACK" not in werk_on_postgres.log:
                assert time.monotonic() < deadline, "the ACK was never refused"
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
            rename_working(shared_postgres, "working_cut", "working")

            # Then the worker sends the ACK again until it lands: the job is done, once
            # (not left reserved until the reaper runs it again or, retry 0, discards it)
            def finished() -> bool:
                with Client(werk_on_postgres.url) as client:
                    info = client.info()["faktory"]
                return bool(info["total_processed"] == 1 and info["sets"]["working"] == 0)

            deadline = time.monotonic() + 20
            while not await asyncio.to_thread(finished):
                assert time.monotonic() < deadline, "the ACK never landed"
                await asyncio.sleep(0.2)
        said = [r.getMessage() for r in caplog.records]
        assert any("could not store ACK" in line for line in said), said
        assert any("stored ACK" in line and "at last" in line for line in said), said
        assert not any("refused ACK" in line for line in said), said
        assert runs == ["once"]
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
