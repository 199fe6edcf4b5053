"""The Cron and Throttles tabs of the web UI, on an in-process server (embedded SQLite)."""

from __future__ import annotations

from pathlib import Path

from tests.webui.conftest import client_of, start_server

SETTINGS = {
    "cron": [
        {
            "schedule": "*/5 * * * *",
            "name": "reports",
            "job": {"type": "Report", "queue": "crq", "custom": {"team": "ops"}},
        },
        {"schedule": "0 3 * * *", "timezone": "Europe/Berlin", "job": {"type": "Nightly"}},
    ],
    "throttles": {"tq": {"concurrency": 2, "timeout": 30}, "wq": {"worker": 1}},
}


async def test_cron_and_throttles_tabs(tmp_path: Path) -> None:
    server = await start_server(tmp_path, settings=SETTINGS)
    try:
        async with client_of(server) as client:
            await server.cron.tick()  # the entries start now
            entry = server.cron.cron.entries[0]
            due = entry.next_after(server.manager.clock())
            assert due is not None
            await server.cron.cron.fire(entry, due, due)
            await server.manager.push(
                {"jid": "job-tq-000001", "jobtype": "T", "args": []} | {"queue": "tq"}
            )
            assert await server.manager.fetch(["tq"], "w1", timeout=0) is not None

            page = await client.get("/cron")
            assert page.status_code == 200
            text = page.text
            assert 'href="/cron"' in text and 'href="/throttles"' in text
            assert "every 5 minutes" in text and "at 03:00 every day (Europe/Berlin)" in text
            assert "reports" in text and "Nightly" in text and '{"team": "ops"}' in text

            detail = await client.get("/cron/reports")
            assert detail.status_code == 200
            (run,) = (await server.cron.status())[0]["runs"]
            assert run["jid"] in detail.text
            assert (await client.get("/cron/nope")).status_code == 404

            throttles = await client.get("/throttles")
            assert throttles.status_code == 200
            assert "2 concurrent" in throttles.text and "1 per worker" in throttles.text
            assert '<td class="num">1</td>' in throttles.text  # tq: one taken, one free
    finally:
        await server.stop()


async def test_empty_tabs(tmp_path: Path) -> None:
    server = await start_server(tmp_path)
    try:
        async with client_of(server) as client:
            assert "No periodic jobs" in (await client.get("/cron")).text
            assert "No throttles" in (await client.get("/throttles")).text
    finally:
        await server.stop()
