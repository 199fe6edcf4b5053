"""Redis-only behaviour: several stores (servers) on one Redis, and Redis restarts.

The shared contract is tested in ``test_contract.py``; here two :class:`RedisStore`
instances on the same prefix stand for two Werk servers. Tests use DB 1 of the Redis at
127.0.0.1:6379 with a unique prefix each and delete only that prefix's keys (never FLUSHDB:
others test against the same Redis). They skip when that Redis is absent, except in CI.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from werk.errors import StorageError
from werk.storage import open_store
from werk.storage.base import Entry, Process, Scored
from werk.storage.matching import glob
from werk.storage.redis.store import RedisStore
from werk.storage.redis.url import RedisURL, parse_url

pytestmark = pytest.mark.redis

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
StoreFactory = Callable[[], Awaitable[RedisStore]]


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _require(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


async def _delete_prefix(url: str, prefix: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        for i in range(0, len(keys), 500):
            await client.unlink(*keys[i : i + 500])
    finally:
        await client.aclose()


@pytest.fixture
def redis_url() -> str:
    """The URL of DB 1 of the shared local Redis (skips when it is absent, except in CI)."""
    _require(_reachable(REDIS_HOST, REDIS_PORT), "Redis at 127.0.0.1:6379 is not reachable")
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/1"


@pytest.fixture
async def stores(redis_url: str) -> AsyncIterator[StoreFactory]:
    """A factory of opened stores that all share one fresh prefix (one per server)."""
    prefix = f"werktest:{uuid.uuid4().hex}:"
    opened: list[RedisStore] = []

    async def factory() -> RedisStore:
        store = RedisStore.from_url(f"{redis_url}?prefix={prefix}")
        await store.open()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()
    await _delete_prefix(redis_url, prefix)


def entry(jid: str, queue: str = "default", priority: int = 5) -> Entry:
    body = f'{{"jid":"{jid}","jobtype":"T","args":[12345678901234567891]}}'.encode()
    return Entry(jid, queue, "T", priority, 60, body)


# -- two servers on one Redis -------------------------------------------------------------


async def test_concurrent_fetches_never_share_a_job(stores: StoreFactory) -> None:
    # Given 2,000 jobs and two servers
    a, b = await stores(), await stores()
    jids = [f"j{i}" for i in range(2000)]
    await a.enqueue([entry(j, priority=1 + i % 9) for i, j in enumerate(jids)], 1000.0)
    got: list[str] = []

    async def drain(store: RedisStore, wid: str) -> None:
        while (res := await store.fetch(["default"], 1001.0, wid)) is not None:
            got.append(res.entry.jid)

    # When 4 fetch loops per server drain the queue at once
    await asyncio.gather(*(drain(s, f"w{i}") for i in range(4) for s in (a, b)))

    # Then every job was handed out exactly once and is reserved
    assert sorted(got) == sorted(jids)
    assert await b.working_size() == 2000


async def test_priority_then_fifo_across_servers(stores: StoreFactory) -> None:
    a, b = await stores(), await stores()
    await a.enqueue([entry("a1", priority=3), entry("a2", priority=7)], 1.0)
    await b.enqueue([entry("b1", priority=7), entry("b2", priority=3)], 2.0)
    order = [(await s.fetch(["default"], 3.0, "w")) for s in (b, a, b, a)]
    assert [r.entry.jid for r in order if r] == ["a2", "b1", "a1", "b2"]


async def test_push_on_one_server_wakes_a_waiter_on_another(stores: StoreFactory) -> None:
    # Given a waiter on server B: its FETCH found nothing
    a, b = await stores(), await stores()
    loop = asyncio.get_running_loop()
    woke: asyncio.Future[tuple[float, list[str]]] = loop.create_future()

    def wake(queues: Iterable[str]) -> None:
        if not woke.done():
            woke.set_result((time.perf_counter(), list(queues)))

    b.on_available(wake)
    assert await b.fetch(["critical"], 1.0, "w1") is None
    # When server A enqueues
    start = time.perf_counter()
    await a.enqueue([entry("x", queue="critical")], 1.0)
    # Then B's callback runs, naming the queue: only A's announcement calls it (neither
    # store polls), so its arrival is the proof; how soon is the benchmarks' to measure
    at, queues = await asyncio.wait_for(woke, 10.0)
    assert queues == ["critical"]
    assert at >= start


async def test_push_publishes_nothing_while_no_other_server_waits(
    stores: StoreFactory, redis_url: str
) -> None:
    # Given two servers, A with a FETCH that found nothing, B without any
    a, b = await stores(), await stores()
    assert await a.fetch(["q"], 1.0, "w1") is None
    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(a.keys.available)
    try:
        # When A pushes (only A waits: nobody else to wake), then B pushes (A waits)
        await a.enqueue([entry("x", queue="q")], 1.0)
        await b.enqueue([entry("y", queue="q")], 1.0)
        # Then exactly one message was published: B's
        messages = []
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:  # None also stands for a skipped subscribe reply
            message = await pubsub.get_message(timeout=0.05)
            if message is not None:
                messages.append(message)
        assert [json.loads(m["data"])["o"] for m in messages] == [b.origin]
    finally:
        await pubsub.aclose()
        await client.aclose()


async def test_own_writes_wake_locally_and_once(stores: StoreFactory) -> None:
    a = await stores()
    calls: list[list[str]] = []
    a.on_available(lambda q: calls.append(list(q)))
    await a.enqueue([entry("x", queue="q1"), entry("y", queue="q2")], 1.0)
    assert calls == [["q1", "q2"]]  # synchronously, before enqueue returned
    await asyncio.sleep(0.05)
    assert calls == [["q1", "q2"]]  # its own pub/sub echo is skipped


async def test_move_due_on_both_servers_moves_each_entry_once(stores: StoreFactory) -> None:
    a, b = await stores(), await stores()
    await a.add("scheduled", [Scored(float(i), entry(f"s{i}")) for i in range(1000)])
    counts = await asyncio.gather(
        *(s.move_due("scheduled", 5000.0, 37) for _ in range(20) for s in (a, b))
    )
    while (more := await b.move_due("scheduled", 5000.0, 100)) > 0:
        counts.append(more)
    assert sum(counts) == 1000
    assert (await a.queue_sizes())["default"] == 1000
    page = await b.queue_page("default", 0, 2000)
    assert sorted(q.entry.jid for q in page) == sorted(f"s{i}" for i in range(1000))


async def test_expire_against_extend_exactly_one_wins(stores: StoreFactory) -> None:
    # Given 300 reservations expiring at 1060
    a, b = await stores(), await stores()
    await a.enqueue([entry(f"r{i}") for i in range(300)], 1000.0)
    while await a.fetch(["default"], 1000.0, "w") is not None:
        pass

    # When server A extends each while server B expires it
    async def race(jid: str) -> tuple[bool, bool]:
        extended, expired = await asyncio.gather(a.extend(jid, 5000.0), b.expire(jid, 2000.0, None))
        return extended, expired

    results = await asyncio.gather(*(race(f"r{i}") for i in range(300)))
    # Then per job exactly one side won, and extended jobs are still reserved
    for i, (extended, expired) in enumerate(results):
        assert extended != expired
        held = await b.reservation(f"r{i}")
        assert (held is not None) == extended
        assert held is None or held.expires_at == 5000.0
    failures = sum(exp for _, exp in results)
    assert (await a.counters()).failures == failures


async def test_ack_on_another_server_and_shared_counters(stores: StoreFactory) -> None:
    a, b = await stores(), await stores()
    await a.enqueue([entry("x")], 86400.0 * 3)
    res = await a.fetch(["default"], 86400.0 * 3 + 1, "w")
    assert res is not None
    acked = await b.ack("x", 86400.0 * 3 + 2)
    assert acked == res
    assert (await a.counters()).processed == 1
    assert [d.processed for d in await a.history(["1970-01-04", "1970-01-05"])] == [1, 0]


async def test_processes_are_visible_from_every_server(stores: StoreFactory) -> None:
    a, b = await stores(), await stores()
    await a.put_process(Process("w1", hostname="h1", labels=["x"], server="A"))
    await b.put_process(Process("w2", hostname="h2", server="B"))
    assert [p.wid for p in await a.processes()] == ["w1", "w2"]
    assert await b.get_process("w1") == Process("w1", hostname="h1", labels=["x"], server="A")
    await b.flush()  # processes survive a flush
    await b.delete_process("w2")
    assert [p.wid for p in await a.processes()] == ["w1"]


async def test_paused_queue_is_skipped_by_every_server(stores: StoreFactory) -> None:
    a, b = await stores(), await stores()
    await a.enqueue([entry("x", queue="q1"), entry("y", queue="q2")], 1.0)
    await a.pause(["q1"])
    res = await b.fetch(["q1", "q2"], 2.0, "w")
    assert res is not None and res.entry.jid == "y"
    woke: list[list[str]] = []
    b.on_available(lambda q: woke.append(list(q)))
    await a.resume(["q1"])
    await asyncio.sleep(0.05)
    assert woke == [["q1"]]


# -- URLs, values, errors -----------------------------------------------------------------


def test_url_prefix_is_split_off() -> None:
    assert parse_url("redis://h:1?prefix=a:b:&db=2") == RedisURL("redis://h:1", "a:b:", {"db": 2})
    assert parse_url("redis://h:1/2?prefix=a:b:") == RedisURL("redis://h:1/2", "a:b:", {})
    assert parse_url("unix:///tmp/r.sock") == RedisURL("unix:///tmp/r.sock", "werk:", {})
    store = open_store("rediss://h/0?prefix=x:")
    assert isinstance(store, RedisStore) and store.keys.prefix == "x:"


def test_glob_has_redis_match_meaning() -> None:
    assert glob("*a?c*").match(b'{"x":"abc"}')
    assert glob("[^x]*").match(b"yz") and not glob("[^x]*").match(b"xz")
    assert glob("[a-c]").match(b"b") and not glob("[a-c]").match(b"d")
    assert glob("a\\*").match(b"a*") and not glob("a\\*").match(b"ab")
    assert not glob("abc").match(b"abcd")


async def test_bodies_and_floats_round_trip_exactly(stores: StoreFactory) -> None:
    a = await stores()
    body = b'{"args":[9007199254740993,"|\\n\xc3\xa9"],"jid":"x"}'
    e = Entry("x", "q:with|bars", "Job|type", 9, 86400, body)
    now = 1712345678.123456
    await a.enqueue([e], now)
    res = await a.fetch(["q:with|bars"], now + 0.1, "wid|1")
    assert res is not None and res.entry == e and res.enqueued_at == now
    assert res.expires_at == (now + 0.1) + 86400 and res.wid == "wid|1"
    assert await a.fail("x", now, None)


async def test_unreachable_redis_raises_storage_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = RedisStore(f"redis://127.0.0.1:{port}/0", retries=1)
    with pytest.raises(StorageError):
        await store.open()
    await store.close()


# -- a Redis restart ------------------------------------------------------------------------


class RedisServer:
    """A private redis-server with AOF fsync on every write, restartable on one port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
            + ["--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _reachable("127.0.0.1", self.port):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server subprocess of our own (killed at the end)."""
    _require(shutil.which("redis-server") is not None, "redis-server is not installed")
    server = RedisServer(tmp_path).start()
    yield server
    server.kill()


async def test_a_redis_without_aof_is_warned_about(
    private_redis: RedisServer, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given one Redis with appendonly yes (private_redis) and one without (the suite's)
    with_aof = RedisStore.from_url(f"redis://127.0.0.1:{private_redis.port}/0?prefix=aof:")
    without = RedisStore.from_url(f"{redis_url}?prefix=werktest:noaof:")
    for store, warned in ((with_aof, False), (without, True)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="werk.storage.redis"):
            await store.open()
        await store.close()
        # Then opening warns exactly when +OK would mean "in Redis' memory" only
        said = [r.getMessage() for r in caplog.records if r.name == "werk.storage.redis"]
        assert bool(said) == warned, said
        if warned:
            assert "appendonly yes" in said[0]


async def test_store_survives_a_redis_restart(private_redis: RedisServer) -> None:
    # Given jobs enqueued (acknowledged) on an AOF-always Redis, and a second server
    url = f"redis://127.0.0.1:{private_redis.port}/0?prefix=fault:"
    a, b = RedisStore.from_url(url), RedisStore.from_url(url)
    await a.open()
    await b.open()
    try:
        await a.enqueue([entry(f"j{i}") for i in range(500)], 1.0)
        await a.add("retries", [Scored(5.0, entry("r"))])

        # When redis-server is killed and comes back on the same port and data dir
        private_redis.kill()
        private_redis.start()

        # Then the store reconnects by itself and nothing acknowledged was lost
        assert (await a.queue_sizes())["default"] == 500
        assert await a.set_size("retries") == 1
        res = await a.fetch(["default"], 2.0, "w")
        assert res is not None and res.entry.jid == "j0"
        # and B's subscriber came back: a FETCH of B's waits, and A's next push wakes it
        woke = asyncio.Event()
        b.on_available(lambda q: woke.set())
        assert await b.fetch(["late"], 3.0, "w2") is None
        deadline = time.monotonic() + 5
        while not woke.is_set():
            assert time.monotonic() < deadline, "the subscriber did not resubscribe"
            await a.enqueue([entry("late", queue="late")], 3.0)
            await asyncio.sleep(0.05)
    finally:
        await a.close()
        await b.close()


async def test_outage_raises_storage_error_then_recovers(private_redis: RedisServer) -> None:
    # Given a store that retries only once
    store = RedisStore(f"redis://127.0.0.1:{private_redis.port}/0", retries=1)
    await store.open()
    try:
        await store.enqueue([entry("x")], 1.0)
        # When Redis is down, calls fail with StorageError (wrapping redis-py's error)
        private_redis.kill()
        with pytest.raises(StorageError) as info:
            await store.queue_sizes()
        assert info.value.__cause__ is not None
        # Then once Redis is back, the same store works again without reopening
        private_redis.start()
        assert await store.queue_sizes() == {"default": 1}
    finally:
        await store.close()


# -- other transports: a Unix socket, TLS ---------------------------------------------------


def _start_private(
    tmp_path: Path, args: list[str], ready: Callable[[], bool]
) -> subprocess.Popen[bytes] | None:
    proc = subprocess.Popen(
        ["redis-server", "--save", "", "--appendonly", "no", "--dir", str(tmp_path), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            return None
        time.sleep(0.02)
    return proc


async def _round_trip(url: str) -> None:
    # Pushes, FETCHes and ACKs (the batch script's own connection) and a pooled command.
    store = RedisStore.from_url(url)
    await store.open()
    try:
        await store.enqueue([entry(f"t{i}") for i in range(50)], 1000.0)
        got = await asyncio.gather(*(store.fetch(["default"], 1001.0, "w") for _ in range(50)))
        jids = {r.entry.jid for r in got if r is not None}
        acked = await asyncio.gather(*(store.ack(j, 1002.0) for j in jids))
        assert len(jids) == 50 and all(a is not None for a in acked)
        assert (await store.counters()).processed == 50
    finally:
        await store.close()


async def test_store_over_a_unix_socket(tmp_path: Path) -> None:
    _require(shutil.which("redis-server") is not None, "redis-server is not installed")
    path = tmp_path / "redis.sock"
    proc = _start_private(tmp_path, ["--port", "0", "--unixsocket", str(path)], path.exists)
    assert proc is not None, "redis-server did not start"
    try:
        await _round_trip(f"unix://{path}?db=0&prefix=unix:")
    finally:
        proc.kill()
        proc.wait(10)


async def test_store_over_tls(tmp_path: Path) -> None:
    _require(shutil.which("redis-server") is not None, "redis-server is not installed")
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (to make a certificate)")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tls = ["--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"]
    tls += ["--tls-cert-file", str(cert), "--tls-key-file", str(key)]
    tls += ["--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"]
    proc = _start_private(tmp_path, tls, lambda: _listening(port))
    if proc is None:
        pytest.skip("this redis-server does not start with TLS (built without it?)")
    try:
        await _round_trip(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}&prefix=tls:")
    finally:
        proc.kill()
        proc.wait(10)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False
