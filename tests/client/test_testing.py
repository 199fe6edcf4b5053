"""The helpers of werk.client.testing, used the way users' tests would."""

from __future__ import annotations

import asyncio

from werk.client import Client, Job, Worker
from werk.client.testing import run_server


def test_run_server_in_process() -> None:
    with run_server(password="pw") as server:
        assert server.url.startswith("tcp://:pw@127.0.0.1:")
        worker = Worker(server.url, concurrency=2, shutdown_timeout=2)
        done: list[int] = []

        @worker.register
        async def record(n: int) -> None:
            done.append(n)
            if len(done) == 3:
                worker.stop()

        with Client(server.url) as client:
            client.push_bulk([Job("record", [n]) for n in range(3)])
            asyncio.run(worker.run_async())
            assert sorted(done) == [0, 1, 2]
            assert client.info()["faktory"]["total_processed"] == 3
