"""Helpers for the bad-input tests (issue 13): a server seeded with one job in every place,
and a snapshot of where every job is, to prove a refused command changed nothing.

Every test here runs on each backend of the ``backend`` fixture (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.helpers import Peer, ServerProcess, push_line
from tests.webui.conftest import Web, web  # noqa: F401  (the in-process server fixture)
from werk.cli.server import build_server
from werk.protocol.resp import NEED_DATA, Reply, ReplyReader, Simple
from werk.server.config import ServerConfig
from werk.server.server import Server

T = TypeVar("T")

OK = Simple("OK")
FAR = "2099-01-01T00:00:00Z"


def info(peer: Peer) -> dict[str, Any]:
    """Return the ``faktory`` section of INFO."""
    reply = peer.call("INFO")
    assert isinstance(reply, bytes), reply
    section: dict[str, Any] = json.loads(reply)["faktory"]
    return section


def snapshot(peer: Peer) -> dict[str, Any]:
    """Where the jobs are: the size of every non-empty queue and of every set (working
    included)."""
    doc = info(peer)
    return {"queues": {q: n for q, n in doc["queues"].items() if n}, "sets": doc["sets"]}


def fetch(peer: Peer, queue: str = "default") -> dict[str, Any] | None:
    """FETCH one job of ``queue`` and decode it strictly (no NaN, no Infinity)."""
    reply = peer.call(f"FETCH {queue}")
    if reply is None:
        return None
    assert isinstance(reply, bytes), reply
    job: dict[str, Any] = json.loads(reply, parse_constant=lambda c: pytest.fail(c))
    return job


def fail_once(peer: Peer, jid: str, queue: str, **fields: Any) -> None:
    """Push, fetch and FAIL a job (``retry=-1`` sends it to the dead set)."""
    assert peer.call(push_line(jid, queue=queue, **fields)) == OK
    got = fetch(peer, queue)
    assert got is not None and got["jid"] == jid
    assert peer.call("FAIL " + json.dumps({"jid": jid, "errtype": "E", "message": "m"})) == OK


def seed(peer: Peer) -> dict[str, Any]:
    """Put one job in each of Scheduled, Retries and Dead, and one in queue ``q1``;
    return the snapshot."""
    assert peer.call(push_line("seed-scheduled", queue="q1", at=FAR)) == OK
    fail_once(peer, "seed-retry", "q-retry", retry=5)
    fail_once(peer, "seed-dead", "q-dead", retry=-1)
    assert peer.call(push_line("seed-waiting", queue="q1")) == OK
    state = snapshot(peer)
    assert state["sets"]["scheduled"] == state["sets"]["retries"] == state["sets"]["dead"] == 1
    assert state["queues"] == {"q1": 1}
    return state


@pytest.fixture
def seeded(werk_server_factory: Callable[..., ServerProcess]) -> tuple[Peer, dict[str, Any]]:
    """A fresh server on the test's backend, seeded (see :func:`seed`), and its peer."""
    server = werk_server_factory()
    peer = Peer(server.host, server.port)
    assert peer.hello() == OK
    return peer, seed(peer)


class AsyncPeer:
    """A raw protocol client for an in-process server (it shares the test's event loop)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.replies = ReplyReader()

    @classmethod
    async def connect(cls, port: int, **hello: Any) -> AsyncPeer:
        """Connect, read ``+HI`` and say HELLO with ``hello``'s fields."""
        peer = cls(*await asyncio.open_connection("127.0.0.1", port))
        assert isinstance(await peer.reply(), Simple)
        assert await peer.call("HELLO " + json.dumps({"v": 2, **hello})) == OK
        return peer

    async def reply(self) -> Reply:
        """Read one reply."""
        while (item := self.replies.next_reply()) is NEED_DATA:
            data = await self.reader.read(262144)
            assert data, "the server closed the connection"
            self.replies.feed(data)
        return item  # type: ignore[return-value]

    async def call(self, line: str) -> Reply:
        """Send one command line, return its reply."""
        self.writer.write(line.encode() + b"\r\n")
        return await self.reply()

    async def close(self) -> None:
        """Close the connection."""
        self.writer.close()
        await self.writer.wait_closed()


@dataclass
class Live:
    """An in-process server (command and web port) running on its own thread's loop, so
    tests can use blocking peers and HTTP, and move the manager's clock."""

    server: Server
    loop: asyncio.AbstractEventLoop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def peer(self, **hello: Any) -> Peer:
        """A connected peer that has said HELLO with ``hello``'s fields."""
        peer = Peer("127.0.0.1", self.server.port)
        assert peer.hello(**hello) == OK
        return peer

    def get(self, path: str) -> httpx.Response:
        """GET a web UI path."""
        return httpx.get(f"http://127.0.0.1:{self.server.web_port}{path}", timeout=30)

    def reap(self, ahead: float) -> int:
        """Run the reservation reaper as if ``ahead`` seconds had passed; return how many
        reservations it reaped."""
        manager = self.server.manager
        manager.clock = lambda: time.time() + ahead
        try:
            return len(self.run(manager.reap_reservations()))
        finally:
            manager.clock = time.time


@pytest.fixture
def live(tmp_path: Path, backend: str | None) -> Iterator[Live]:
    """A server on the test's backend, run in-process on a thread of its own."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    config = ServerConfig(
        binding=("127.0.0.1", 0),
        web_binding=("127.0.0.1", 0),
        data_dir=tmp_path / "data",
        storage_url=backend,
    )
    server = asyncio.run_coroutine_threadsafe(_started(config), loop).result(60)
    try:
        yield Live(server, loop)
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def _started(config: ServerConfig) -> Server:
    server = build_server(config)  # with its web UI, as ``werk server`` builds it
    await server.start()
    return server
