"""The server in-process: the catch-all for bugs, graceful shutdown, storage errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from werk.errors import StorageError
from werk.protocol.resp import NEED_DATA, Error, Reply, ReplyReader, Simple
from werk.server.config import ServerConfig
from werk.server.server import Server


class Conn:
    """A tiny asyncio protocol peer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.replies = reader, writer, ReplyReader()

    async def reply(self) -> Reply:
        while (item := self.replies.next_reply()) is NEED_DATA:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("closed")
            self.replies.feed(data)
        return item  # type: ignore[return-value]

    async def call(self, line: str) -> Reply:
        self.writer.write(line.encode() + b"\r\n")
        return await self.reply()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    config = ServerConfig(binding=("127.0.0.1", 0), web_binding=None, data_dir=tmp_path)
    srv = Server(config)
    await srv.start()
    yield srv
    await srv.stop()


async def connect(server: Server) -> Conn:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    conn = Conn(reader, writer)
    assert await conn.reply() == Simple('HI {"v":2}')
    assert await conn.call('HELLO {"v":2}') == Simple("OK")
    return conn


async def test_a_bug_in_a_handler_is_an_internal_error_not_a_crash(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(job: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(server.manager, "push", broken)
    conn, other = await connect(server), await connect(server)
    assert await conn.call('PUSH {"jid":"abcdefgh1","jobtype":"T","args":[]}') == Error(
        "ERR internal error"
    )
    assert isinstance(await conn.call("INFO"), bytes)
    assert isinstance(await other.call("INFO"), bytes)


async def test_a_storage_failure_is_a_clear_error(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def full(entries: Any, now: float) -> None:
        raise StorageError("database or disk is full")

    monkeypatch.setattr(server.store, "enqueue", full)
    conn = await connect(server)
    reply = await conn.call('PUSH {"jid":"abcdefgh1","jobtype":"T","args":[]}')
    assert reply == Error("ERR storage error: database or disk is full")


async def test_shutdown_answers_in_flight_commands_then_refuses(server: Server) -> None:
    conn = await connect(server)
    # A FETCH is blocked when the shutdown starts; the INFO behind it is refused.
    conn.writer.write(b"FETCH empty\r\nINFO\r\n")
    await asyncio.sleep(0.2)
    stopping = asyncio.create_task(server.stop())
    assert await conn.reply() is None
    assert await conn.reply() == Error("ERR shutdown in progress")
    await stopping


async def test_shutdown_keeps_every_pushed_job(tmp_path: Path) -> None:
    config = ServerConfig(binding=("127.0.0.1", 0), web_binding=None, data_dir=tmp_path)
    first = Server(config)
    await first.start()
    conn = await connect(first)
    jobs = [{"jid": f"keep-{i:05d}", "jobtype": "T", "args": []} for i in range(1000)]
    assert await conn.call("PUSHB " + json.dumps(jobs)) == b"{}"
    await first.stop()
    second = Server(config)
    await second.start()
    try:
        doc = await second.info()
        assert doc["faktory"]["queues"] == {"default": 1000}
    finally:
        await second.stop()
