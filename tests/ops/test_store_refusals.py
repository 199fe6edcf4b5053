"""A store that refuses ``werk server`` (a password Redis wants, a missing role or database,
an evicting Redis): one clear line, a quick non-zero exit, nothing retried in vain."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import require
from tests.helpers import Peer, ServerProcess
from tests.ops.test_startup import run_server
from tests.pg import pg_available
from werk.errors import StorageError
from werk.protocol.resp import Simple
from werk.storage.redis.codec import WATCH
from werk.storage.redis.store import RedisStore

StartRedis = Callable[..., int]


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


@pytest.fixture
def start_redis(tmp_path: Path) -> Iterator[StartRedis]:
    """Start private redis-servers with extra arguments; each returns its port."""
    require(shutil.which("redis-server") is not None, "redis-server is not installed")
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> int:
        port = _port()
        directory = tmp_path / f"redis-{port}"
        directory.mkdir()
        proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "yes", "--dir", str(directory), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        deadline = time.monotonic() + 10
        while not _ready(port):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)
        return port

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(10)


async def test_a_refusing_redis_fails_the_open_at_once(start_redis: StartRedis) -> None:
    # Given a Redis that wants a password
    port = start_redis("--requirepass", "sekret")
    # When a store opens it without one, with a wrong one, or with a database it lacks
    for url in (
        f"redis://127.0.0.1:{port}/0",
        f"redis://:wrong@127.0.0.1:{port}/0",
        f"redis://:sekret@127.0.0.1:{port}/99",
    ):
        store = RedisStore.from_url(url)
        started = time.monotonic()
        with pytest.raises(StorageError):
            await store.open()
        await store.close()
        # Then it is refused without retries (it took over 90 s: retries on retries)
        assert time.monotonic() - started < 3, url


async def test_an_evicting_redis_is_warned_about(
    start_redis: StartRedis, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a Redis that evicts keys, and one that refuses CONFIG (a managed Redis)
    evicting = start_redis("--maxmemory-policy", "allkeys-lru")
    no_config = start_redis("--rename-command", "CONFIG", "")
    for port, level, said in (
        (evicting, logging.WARNING, "maxmemory-policy is allkeys-lru"),
        (no_config, logging.INFO, "could not read Redis' maxmemory-policy"),
    ):
        caplog.clear()
        store = RedisStore.from_url(f"redis://127.0.0.1:{port}/0")
        with caplog.at_level(logging.INFO, logger="werk.storage.redis"):
            await store.open()
        await store.close()
        # Then opening says so, once
        lines = [r for r in caplog.records if "maxmemory-policy" in r.getMessage()]
        assert len(lines) == 1, [r.getMessage() for r in lines]
        assert said in lines[0].getMessage()
        assert lines[0].levelno == level


def _refused(tmp_path: Path, url: str) -> str:
    started = time.monotonic()
    done = run_server(tmp_path, "-b", "127.0.0.1:0", "-w", ":0", "--storage", url)
    assert done.returncode == 1
    assert time.monotonic() - started < 20  # was 95 s to refuse, 270 s to exit
    return done.stderr


def test_werk_server_refused_by_redis_says_so_in_one_line(
    tmp_path: Path, start_redis: StartRedis
) -> None:
    # Given a Redis that wants a password, and a port where nothing listens
    port = start_redis("--requirepass", "sekret")
    for url, reason in (
        (f"redis://127.0.0.1:{port}/0", "Authentication required"),
        (f"redis://127.0.0.1:{_port()}/0", "Connection refused"),
    ):
        # When werk server starts on it, then it exits with one line and no traceback
        lines = _refused(tmp_path, url).splitlines()
        assert len(lines) == 1, lines
        assert "cannot start: redis: " in lines[0] and reason in lines[0]


def test_werk_server_refused_by_postgres_says_so_in_one_line(tmp_path: Path) -> None:
    require(pg_available(), "PostgreSQL at 127.0.0.1:5432 is not reachable")
    for url, reason in (
        ("postgresql://werk_no_such_role@127.0.0.1:5432/postgres", "werk_no_such_role"),
        ("postgresql://postgres@127.0.0.1:5432/werk_no_such_db", "werk_no_such_db"),
    ):
        lines = _refused(tmp_path, url).splitlines()
        assert len(lines) == 1, lines
        assert "cannot start: postgres: " in lines[0] and reason in lines[0]


def test_sigterm_during_a_redis_outage_stops_within_the_bound(
    tmp_path: Path, start_redis: StartRedis
) -> None:
    # Given a server on a Redis, with worker processes connected (idle and in a FETCH)
    port = start_redis()
    url = f"redis://127.0.0.1:{port}/0"
    server = ServerProcess(tmp_path / "db", extra_args=["--storage", url]).start()
    peers = [Peer(server.host, server.port) for _ in range(4)]
    try:
        for i, peer in enumerate(peers):
            assert peer.hello(wid=f"w{i}", pid=1, hostname="h", labels=[]) == Simple("OK")
        peers[0].send("FETCH default\r\n")
        # When Redis goes away and the server gets SIGTERM
        subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], check=False)
        started = time.monotonic()
        assert server.stop(timeout=60) == 0
        # Then the stop's store work is bounded (it took 33 s: retries per connection) and
        # nothing runs after "stopped": no unregistering, no traceback
        assert time.monotonic() - started < 20
        log = server.log.decode()
        assert "Traceback" not in log, log
        assert "could not unregister" not in log, log
        assert log.rstrip().splitlines()[-1].endswith(" stopped"), log
    finally:
        for peer in peers:
            peer.close()
        server.kill()


async def test_a_prefix_without_a_separator_is_warned_about(
    start_redis: StartRedis, caplog: pytest.LogCaptureFixture
) -> None:
    # Given ?prefix=tr and ?prefix=tr: (two installations that look like one)
    port = start_redis()
    for prefix, warned in (("tr", True), ("tr:", False)):
        caplog.clear()
        store = RedisStore.from_url(f"redis://127.0.0.1:{port}/0?prefix={prefix}")
        with caplog.at_level(logging.WARNING, logger="werk.storage.redis"):
            await store.open()
        await store.close()
        # Then only the first is warned about, naming the keys it makes
        said = [r.getMessage() for r in caplog.records if "prefix" in r.getMessage()]
        assert bool(said) == warned, said
        if warned:
            assert "'trq:default'" in said[0]


async def test_a_frozen_redis_is_logged_once_and_its_return_too(
    start_redis: StartRedis, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an open store on a Redis that then freezes (SIGSTOP: connections stay open)
    monkeypatch.setattr(WATCH, "after", 0.5)  # STALL_AFTER is 5 s
    port = start_redis()
    store = RedisStore.from_url(f"redis://127.0.0.1:{port}/0")
    await store.open()
    pid = int(
        subprocess.check_output(["redis-cli", "-p", str(port), "info", "server"])
        .decode()
        .split("process_id:")[1]
        .split()[0]
    )
    try:
        os.kill(pid, signal.SIGSTOP)
        with caplog.at_level(logging.WARNING, logger="werk.storage"):
            # When calls wait on it for a while, then it comes back
            calls = [asyncio.ensure_future(store.queue_sizes()) for _ in range(3)]
            await asyncio.sleep(2.5)
            os.kill(pid, signal.SIGCONT)
            await asyncio.gather(*calls)
        # Then one warning said so, and one line that it answers again (none before)
        said = [r.getMessage() for r in caplog.records if r.name == "werk.storage"]
        assert len(said) == 2, said
        assert said[0].startswith("redis: no reply for ") and "3 calls waiting" in said[0]
        assert said[1].startswith("redis: answering again after ")
    finally:
        os.kill(pid, signal.SIGCONT)
        await store.close()
