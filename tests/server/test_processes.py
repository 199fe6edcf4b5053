"""The worker process registry: connection counts (the Busy page's "Conns") and the
records a server finds when it starts (a restore, a crash, a restart on another port), on
every backend.

A Python worker with concurrency ``c`` holds ``c + 1`` connections: one per processor
(a FETCH blocks its connection) and the heartbeat's.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import ServerProcess
from tests.webui.conftest import client_of, start_server
from werk.client import AsyncClient, Worker
from werk.manager.processes import HEARTBEAT_TTL
from werk.manager.servers import SERVER_PREFIX
from werk.server.server import Server
from werk.storage.base import Process


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    """Poll ``check`` until it returns a true value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := await check():
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout}s")


async def conns(server: Server, wid: str) -> int | None:
    """Return the connections the registry counts for ``wid`` (None: no record)."""
    found = [p for p in await server.processes.list() if p.wid == wid]
    return found[0].connections if found else None


def busy_row(html: str, wid: str) -> str:
    """Return the Busy page's table row of process ``wid``."""
    match = re.search(rf'<tr data-wid="{wid}">.*?</tr>', html, re.S)
    assert match, html[:2000]
    return match.group(0)


@pytest.mark.parametrize("concurrency", [1, 5])
async def test_conns_counts_every_connection_of_a_real_worker(
    tmp_path: Path, backend: str | None, concurrency: int
) -> None:
    # Given a server and a Python worker whose connections all say HELLO at once
    server = await start_server(tmp_path / "data", storage_url=backend)
    worker = Worker(f"tcp://127.0.0.1:{server.port}", concurrency=concurrency)
    task = asyncio.create_task(worker.run_async())
    try:
        expected = concurrency + 1
        # Then the registry counts each of them (it used to lose concurrent HELLOs)
        await until(lambda: _is(server.open_connections(worker.wid), expected))
        await until(lambda: _counted(server, worker.wid, expected))
        # And the Busy page's Conns cell says so
        async with client_of(server) as web:
            row = busy_row((await web.get("/busy")).text, worker.wid)
        assert f'data-label="Conns" class="num">{expected}<' in row
    finally:
        worker.stop()
        await task
        await server.stop()


async def _is(value: Any, expected: Any) -> bool:
    return bool(value == expected)


async def _counted(server: Server, wid: str, expected: int | None) -> bool:
    return await conns(server, wid) == expected


async def test_each_server_counts_its_own_connections(tmp_path: Path, backend: str | None) -> None:
    if backend is None:
        pytest.skip("one server at a time holds an embedded store")
    # Given one worker process (one wid) with 2 connections to each of two servers
    one = await start_server(tmp_path / "one", storage_url=backend)
    two = await start_server(tmp_path / "two", storage_url=backend)
    clients = [
        AsyncClient(f"tcp://127.0.0.1:{server.port}", wid="w-shared", pool_size=2)
        for server in (one, two)
    ]
    try:
        for client in clients:
            await asyncio.gather(client.beat(), client.beat())
        # Then both servers show the 4 connections of that process
        for server in (one, two):
            assert await conns(server, "w-shared") == 4
        # When the connections to the second server close
        await clients[1].close()
        # Then both servers count the first server's 2, and the process stays known
        for server in (one, two):
            await until(partial(_counted, server, "w-shared", 2))
        # And once the last one closes the process is forgotten everywhere
        await clients[0].close()
        for server in (one, two):
            await until(partial(_counted, server, "w-shared", None))
    finally:
        for client in clients:
            await client.close()
        await one.stop()
        await two.stop()


async def test_a_starting_server_forgets_the_processes_a_crash_or_restore_left(
    tmp_path: Path, backend: str | None
) -> None:
    # Given records a crashed server (or a backup) left: a process whose only link is
    # older than the heartbeat expiry, one silent for longer, and one from before links
    now = time.time()
    stale = [
        Process("w-old-link", last_beat=now, links={"gone:1": [3, now - HEARTBEAT_TTL - 1]}),
        Process("w-silent", last_beat=now - HEARTBEAT_TTL - 1, links={"gone:1": [3, now]}),
        Process("w-no-links", last_beat=now, connections=2),
    ]
    # ... and a process that another server, running on another machine, counted just now
    alive = Process("w-alive", last_beat=now, links={"other:2": [2, now]})
    first = await start_server(tmp_path / "data", storage_url=backend)
    for process in [*stale, alive]:
        await first.store.put_process(process)
    await first.store.put_record(SERVER_PREFIX + "other:2", far_server(), 60, now)
    await first.stop()
    # When a server starts on that store
    server = await start_server(tmp_path / "data", storage_url=backend)
    try:
        # Then the stale ones are gone; the live one stays on a shared backend (another
        # server holds its connections) and goes on the embedded store (none can)
        left = {p.wid: p.connections for p in await server.processes.list()}
        assert left == ({} if backend is None else {"w-alive": 2})
        async with client_of(server) as web:
            page = (await web.get("/busy")).text
        assert ("No worker process is connected." in page) == (backend is None)
        assert "w-old-link" not in page and "w-silent" not in page
    finally:
        await server.stop()


def far_server() -> bytes:
    """The liveness record of a server on another machine (its pid cannot be checked)."""
    return json.dumps({"host": "far", "machine": "another-machine", "pid": 1}).encode()


def page_conns(server: ServerProcess, wid: str) -> int | None:
    """Return the Conns cell of ``wid`` on the Busy page of a ``werk server`` (None: no row)."""
    html = httpx.get(f"http://127.0.0.1:{server.web_port}/busy", timeout=10).text
    if f'data-wid="{wid}"' not in html:
        return None
    found = re.search(r'data-label="Conns" class="num">(\d+)<', busy_row(html, wid))
    assert found, html[:2000]
    return int(found.group(1))


async def connect(server: ServerProcess, wid: str, count: int) -> AsyncClient:
    """Open ``count`` connections of worker process ``wid`` to ``server``."""
    client = AsyncClient(server.url, wid=wid, pool_size=count)
    await asyncio.gather(*(client.beat() for _ in range(count)))
    return client


def restart_on_another_port(server: ServerProcess) -> None:
    old = server.port
    server.port = server.web_port = 0
    server.start()
    assert server.port != old


@pytest.mark.parametrize("end", ["kill", "stop"])
async def test_a_server_restarted_on_another_port_counts_only_its_own_connections(
    werk_server_factory: Callable[..., ServerProcess], end: str
) -> None:
    # Given a werk server and a worker process with 3 connections to it
    server = werk_server_factory(web=True)
    old = await connect(server, "w-restart", 3)
    new: AsyncClient | None = None
    try:
        assert page_conns(server, "w-restart") == 3
        # When the server is killed (or stopped) and started again on another port, and
        # the worker process connects to it with 2 connections
        getattr(server, end)()
        restart_on_another_port(server)
        new = await connect(server, "w-restart", 2)
        # Then the Busy page and INFO count only those 2, not the old server's 3 for 60 s
        assert page_conns(server, "w-restart") == 2
        assert (await new.info())["faktory"]["tasks"]["Workers"]["size"] == 1
    finally:
        for client in (old, new):
            if client is not None:
                await client.close()


async def test_servers_sharing_a_store_stop_counting_one_that_is_gone(
    werk_server_factory: Callable[..., ServerProcess], backend: str | None
) -> None:
    if backend is None:
        pytest.skip("one server at a time holds an embedded store")
    # Given two servers on one store and a worker process with 2 connections to each
    one, two = werk_server_factory(web=True), werk_server_factory(web=True)
    clients = [await connect(server, "w-two", 2) for server in (one, two)]
    try:
        assert page_conns(one, "w-two") == page_conns(two, "w-two") == 4
        # When the first server is killed
        one.kill()
        # Then the second counts only its own 2 at once (the killed one ran on this
        # machine and its pid is gone), not the dead server's for 60 s
        assert page_conns(two, "w-two") == 2
        # When it comes back on another port and the process connects to it once
        restart_on_another_port(one)
        clients.append(await connect(one, "w-two", 1))
        # Then both count 3
        assert page_conns(one, "w-two") == page_conns(two, "w-two") == 3
        # And when the second server stops cleanly, the first counts its own 1
        two.stop()
        assert page_conns(one, "w-two") == 1
    finally:
        for client in clients:
            await client.close()


async def test_a_server_on_another_machine_counts_until_its_record_expires(
    tmp_path: Path, backend: str | None
) -> None:
    if backend is None:
        pytest.skip("one server at a time holds an embedded store")
    # Given a process connected only to a server on another machine, whose liveness
    # record expires in 1 s (it crashed: nobody rewrites it)
    server = await start_server(tmp_path / "data", storage_url=backend)
    try:
        now = time.time()
        await server.store.put_record(SERVER_PREFIX + "far:7419", far_server(), 1.0, now)
        await server.store.put_process(
            Process("w-far", last_beat=now, links={"far:7419": [3, now]})
        )
        # Then it counts while the record lives, and the process is not listed after
        assert await conns(server, "w-far") == 3
        await until(partial(_counted, server, "w-far", None), timeout=5)
        # But its record stays: a server that only stalled past the expiry writes its
        # liveness record again and counts again
        assert await server.store.get_process("w-far") is not None
        await server.store.put_record(SERVER_PREFIX + "far:7419", far_server(), 60, time.time())
        assert await conns(server, "w-far") == 3
    finally:
        await server.stop()
