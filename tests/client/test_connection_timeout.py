"""The async connection's read timeout (one timer per connection, not one per read)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from werk.client.client import CALLS
from werk.client.connection import AsyncConnection
from werk.client.url import resolve


async def fake_server(answer_after: float | None) -> tuple[asyncio.Server, str]:
    """A server that greets, accepts HELLO, then answers each line with +OK after
    ``answer_after`` seconds (``None``: never answers after the greeting)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b'+HI {"v":2}\r\n')
        if answer_after is None:
            await reader.read()  # silent until the client goes away
            writer.close()
            return
        while await reader.readline():
            await asyncio.sleep(answer_after)
            writer.write(b"+OK\r\n")
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"tcp://127.0.0.1:{port}"


@pytest.fixture
async def silent() -> AsyncIterator[str]:
    server, url = await fake_server(None)
    async with server:
        yield url


@pytest.fixture
async def slow() -> AsyncIterator[str]:
    server, url = await fake_server(0.2)
    async with server:
        yield url


async def test_a_read_without_a_reply_times_out(silent: str) -> None:
    # Given a server that greets and then says nothing, when the client waits for the
    # reply to its HELLO, then the read fails after the connection's timeout.
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="no reply within 0.3s"):
        await AsyncConnection.open(resolve(silent), timeout=0.3)
    assert time.monotonic() - started < 5
    await asyncio.sleep(0.05)  # the server's side sees the close and ends


async def test_replies_inside_the_timeout_keep_the_connection_alive(slow: str) -> None:
    # Given replies that each take 0.2 s of a 0.3 s timeout, when the connection is used
    # for longer than its timeout in all (the timer fires mid-read and is re-armed), then
    # no read times out.
    conn = await AsyncConnection.open(resolve(slow), timeout=0.3)
    try:
        for _ in range(4):
            assert await conn.call(CALLS.ack("jid-1")) is None
        await asyncio.sleep(0.5)  # idle past the timeout: no read pending, nothing fires
        assert await conn.call(CALLS.ack("jid-2")) is None
        assert not conn.closed
    finally:
        conn.close()
