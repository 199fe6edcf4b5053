"""Quiet and terminate sent from the server's web UI (Busy page) reach a running worker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from tests.client.conftest import async_wait_until
from tests.helpers import ServerProcess
from werk.client import Client, Job, Worker


async def send_signal(server: ServerProcess, wid: str, signal: str) -> None:
    """Press Quiet or Stop on the Busy page, as a browser would (with the CSRF token)."""
    base = f"http://{server.host}:{server.web_port}"
    async with httpx.AsyncClient(base_url=base) as http:
        (await http.get("/busy")).raise_for_status()
        token = http.cookies["werk_csrf"]
        form = {"wid": wid, "signal": signal, "csrf_token": token}
        reply = await http.post("/busy", data=form)
        assert reply.status_code in (200, 302, 303), reply.text


async def test_quiet_and_terminate_from_the_web_ui(
    werk_server_factory: Callable[..., ServerProcess],
) -> None:
    server = werk_server_factory(web=True)
    client = Client(server.url)
    worker = Worker(server.url, concurrency=2, heartbeat_interval=0.2, shutdown_timeout=2)
    done: list[int] = []

    @worker.register
    async def record(n: int) -> None:
        done.append(n)

    task = asyncio.create_task(worker.run_async())
    client.push(Job("record", [1]))
    await async_wait_until(lambda: done == [1])
    await send_signal(server, worker.wid, "quiet")
    await async_wait_until(lambda: worker.state == "quiet")
    await asyncio.sleep(2.5)  # FETCHes already waiting come back empty
    client.push(Job("record", [2]))
    await asyncio.sleep(1.0)
    assert done == [1] and client.info()["faktory"]["queues"]["default"] == 1
    await send_signal(server, worker.wid, "terminate")
    await asyncio.wait_for(task, 15)
    assert worker.state == "terminate"
    client.close()
