"""The Redis store's batch call sent again after a lost connection runs nothing twice.

The connection to Redis can die after Redis ran the batch script and before its reply
arrived (Redis killed or restarted, a network cut); the store then sends the call again.
Between the store and the shared local Redis (DB 1) sits a proxy that cuts the connection
instead of passing the next reply on: the call has run, its reply is lost. Sent again, it
must answer as the first run did: a FETCH gets the job the first run reserved (it is not
left reserved for nobody while a second job is taken), a PUSH stores one copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.helpers import free_port
from tests.storage.test_redis import (
    REDIS_HOST,
    REDIS_PORT,
    _delete_prefix,
    _require,
    _start_private,
    entry,
)
from werk.errors import StorageError
from werk.storage.redis.store import RedisStore

pytestmark = pytest.mark.redis


class ReplyCutter:
    """A TCP proxy to Redis that, when told, cuts the next connection a reply comes on
    instead of passing the reply on."""

    def __init__(self) -> None:
        self.cut_next = False
        self.cuts = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        upstream, to_redis = await asyncio.open_connection(REDIS_HOST, REDIS_PORT)

        async def up() -> None:
            while data := await client.read(65536):
                to_redis.write(data)
            to_redis.close()

        async def down() -> None:
            while data := await upstream.read(65536):
                if self.cut_next:
                    self.cut_next = False
                    self.cuts += 1
                    to_client.transport.abort()
                    to_redis.close()
                    return
                to_client.write(data)
            to_client.close()

        with contextlib.suppress(OSError):
            await asyncio.gather(up(), down())


@pytest.fixture
async def cut_store() -> AsyncIterator[tuple[RedisStore, ReplyCutter]]:
    """An open store on a fresh prefix of DB 1, reached through a :class:`ReplyCutter`."""
    proxy = ReplyCutter()
    await proxy.start()
    prefix = f"werktest:{uuid.uuid4().hex}:"
    store = RedisStore.from_url(f"redis://127.0.0.1:{proxy.port}/1?prefix={prefix}")
    try:
        await store.open()
    except Exception:
        pytest.skip("Redis at 127.0.0.1:6379 is not reachable")
    yield store, proxy
    await store.close()
    await proxy.close()
    await _delete_prefix(f"redis://{REDIS_HOST}:{REDIS_PORT}/1", prefix)


async def test_a_fetch_sent_again_gets_the_job_its_first_run_reserved(
    cut_store: tuple[RedisStore, ReplyCutter],
) -> None:
    # Given two jobs in a queue (the batch connection is up)
    store, proxy = cut_store
    first = entry("first")
    await store.enqueue([first, entry("second")], time.time())

    # When a FETCH runs in Redis but its reply is cut off, so the store sends it again
    proxy.cut_next = True
    reservation = await store.fetch(["default"], time.time(), "w1")

    # Then it gets the job the first run reserved, and only that one is reserved
    assert proxy.cuts == 1
    assert reservation is not None and reservation.entry.jid == "first"
    assert reservation.entry.body == first.body  # read back from the working hash
    assert await store.working_size() == 1
    assert (await store.queue_sizes())["default"] == 1


async def test_a_push_sent_again_stores_one_copy(
    cut_store: tuple[RedisStore, ReplyCutter],
) -> None:
    store, proxy = cut_store
    await store.enqueue([entry("warm")], time.time())
    proxy.cut_next = True
    await store.enqueue([entry("once")], time.time())
    assert proxy.cuts == 1
    page = await store.queue_page("default", 0, 10)
    assert [queued.entry.jid for queued in page] == ["warm", "once"]


async def test_kept_replies_are_deleted_by_the_next_call(
    cut_store: tuple[RedisStore, ReplyCutter],
) -> None:
    store, _ = cut_store
    for i in range(5):
        await store.enqueue([entry(f"j{i}")], time.time())
    kept = [key async for key in store._redis.scan_iter(match=f"{store.keys.prefix}batch:*")]
    assert len(kept) <= 1  # the last call's, until the next one


async def test_a_full_redis_refuses_pushes_after_a_kept_reply(tmp_path: Path) -> None:
    # Given a private Redis that refuses writes when full, and a store that made one call
    # (so the next call has a kept reply to delete)
    _require(shutil.which("redis-server") is not None, "redis-server is not installed")
    port = free_port()
    proc = _start_private(tmp_path, ["--port", str(port)], lambda: _answers(port))
    assert proc is not None, "redis-server did not start"
    store = RedisStore.from_url(f"redis://127.0.0.1:{port}/0?prefix=full:")
    try:
        await store.open()
        await store.enqueue([entry("before")], time.time())
        # When Redis is over its memory limit (well over: a limit of 1 byte)
        await store._redis.config_set("maxmemory-policy", "noeviction")
        await store._redis.config_set("maxmemory", 1)
        # Then a push is refused for memory (the DEL of the kept reply does not open the
        # door to the writes after it), and a FETCH still drains the queue
        with pytest.raises(StorageError, match="OOM"):
            await store.enqueue([entry("after")], time.time())
        got = await store.fetch(["default"], time.time(), "w")
        assert got is not None and got.entry.jid == "before"
    finally:
        await store.close()
        proc.kill()
        proc.wait(10)


def _answers(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False
