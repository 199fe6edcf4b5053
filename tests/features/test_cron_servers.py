"""Two in-process servers on one shared store (Redis prefix or PostgreSQL schema) run the
same cron: each tick fires once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.features.conftest import Clock
from tests.storage.conftest import Backend
from werk.server.config import ServerConfig
from werk.server.server import Server

SETTINGS = {
    "cron": [
        {"schedule": "* * * * *", "job": {"type": "Minute", "queue": "cron"}},
        {"schedule": "*/2 * * * *", "name": "even", "job": {"type": "Even", "queue": "cron"}},
    ],
    "throttles": {"cron": {"concurrency": 5}},
}


def server_on(backend: Backend, tmp_path: Path, index: int, clock: Clock) -> Server:
    config = ServerConfig(
        binding=("127.0.0.1", 0),
        web_binding=None,
        data_dir=tmp_path / f"data{index}",
        storage_url=backend.url,
        name=f"server{index}",
        settings=SETTINGS,
    )
    server = Server(config)
    server.manager.clock = clock
    server.cron.clock = clock
    return server


@pytest.mark.parametrize("feature_backend", ["redis", "postgres"], indirect=True)  # SQLite: one
async def test_two_servers_one_shared_store(feature_backend: Backend, tmp_path: Path) -> None:
    # Given two running servers sharing a Redis prefix and one controlled clock
    clock = Clock(1_800_000_030.0)  # 30 s into a minute
    servers = [server_on(feature_backend, tmp_path, i, clock) for i in (0, 1)]
    for server in servers:
        await server.start()
    try:
        # When the clock crosses three minute boundaries, the loops running on their own
        for minute in (1, 2, 3):
            clock.now = 1_800_000_000.0 + 60 * minute + 0.5
            await asyncio.sleep(1.3)  # each loop checks at least once a second
        # Then each tick enqueued exactly one job
        page = await servers[0].store.queue_page("cron", 0, 100)
        types = sorted(json.loads(q.entry.body)["jobtype"] for q in page)
        evens = [m for m in (1, 2, 3) if (1_800_000_000 // 60 + m) % 2 == 0]
        assert types == sorted(["Minute"] * 3 + ["Even"] * len(evens))
        status = await servers[1].cron.status()
        assert [len(row["runs"]) for row in status] == [3, len(evens)]
        assert all(server.cron.errors == 0 for server in servers)
    finally:
        for server in servers:
            await server.stop()
