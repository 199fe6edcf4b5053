"""Cron actions (enqueue now, disable, enable; kept across restarts) and the Metrics tab,
on an in-process server, on SQLite and on Redis."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from tests.webui.conftest import TOKEN, Web, client_of, start_server
from werk.manager.retry import FailureReport

SETTINGS = {
    "cron": [
        {
            "schedule": "* * * * *",
            "name": "reports",
            "job": {"type": "Report", "queue": "crq", "args": [1], "custom": {"team": "ops"}},
        }
    ]
}


async def _post(client: object, path: str, action: str) -> str:
    page = await client.get(path)  # type: ignore[attr-defined]
    match = TOKEN.search(page.text)
    assert match
    data = {"csrf_token": match.group(1), "action": action, "back": "entry"}
    response = await client.post(path, data=data)  # type: ignore[attr-defined]
    assert response.status_code == 303, response.text
    location: str = response.headers["location"]
    return location


async def test_cron_enqueue_now_disable_enable_across_restarts(
    tmp_path: Path, backend: str | None
) -> None:
    server = await start_server(tmp_path / "d", storage_url=backend, settings=SETTINGS)
    try:
        async with client_of(server) as client:
            # When "Enqueue now" is pressed, the job is pushed at once and listed as manual
            location = await _post(client, "/cron/reports", "enqueue")
            assert location == "/cron/reports?done=enqueue"
            assert (await server.store.queue_sizes())["crq"] == 1
            page = (await client.get(location)).text
            assert "Enqueued the cron entry&#39;s job now." in page
            assert "Enqueued now from the web UI" in page
            (run,) = (await server.cron.status())[0]["runs"]
            assert run["manual"] and f'href="/jobs/{run["jid"]}"' in page
            # The entry is shown in its configuration's terms
            toml = (
                '[[cron]]\nname = "reports"\nschedule = "* * * * *"\n[cron.job]\n'
                'type = "Report"\nargs = [1]\nqueue = "crq"\n[cron.job.custom]\n"team" = "ops"'
            )
            assert toml in html.unescape(page)
            # When it is disabled, its ticks push nothing
            await _post(client, "/cron/reports", "disable")
            assert (await server.cron.status())[0]["enabled"] is False
            entry = server.cron.cron.entries[0]
            now = server.manager.clock()
            tick = entry.next_after(now)
            assert tick is not None
            assert await server.cron.cron.fire(entry, tick, tick) == ""
            assert (await server.store.queue_sizes())["crq"] == 1
            listing = (await client.get("/cron")).text
            assert 'class="disabled"' in listing and 'value="enable"' in listing
    finally:
        await server.stop()
    # After a restart on the same data the entry is still disabled
    server = await start_server(tmp_path / "d", storage_url=backend, settings=SETTINGS)
    try:
        async with client_of(server) as client:
            assert (await server.cron.status())[0]["enabled"] is False
            assert "Disabled from the web UI" in (await client.get("/cron/reports")).text
            await _post(client, "/cron/reports", "enable")
            assert (await server.cron.status())[0]["enabled"] is True
            entry = server.cron.cron.entries[0]
            tick = entry.next_after(server.manager.clock() + 120)
            assert tick is not None
            assert await server.cron.cron.fire(entry, tick, tick)
            assert (await server.store.queue_sizes())["crq"] == 2
            refused = await client.post("/cron/nope", data={"action": "enqueue"})
            assert refused.status_code == 403  # no token: refused before anything else
    finally:
        await server.stop()


async def test_cron_unknown_entry_and_action(tmp_path: Path, backend: str | None) -> None:
    server = await start_server(tmp_path / "d", storage_url=backend, settings=SETTINGS)
    try:
        async with client_of(server) as client:
            page = await client.get("/cron")
            token = TOKEN.search(page.text)
            assert token
            csrf = token.group(1)
            bad = await client.post("/cron/nope", data={"csrf_token": csrf, "action": "enqueue"})
            assert bad.status_code == 404
            odd = await client.post("/cron/reports", data={"csrf_token": csrf, "action": "boom"})
            assert odd.status_code == 400
    finally:
        await server.stop()


async def test_metrics_page_per_job_type(web: Web) -> None:
    # Given three Report jobs acknowledged and one Mail job failed
    manager = web.server.manager
    for i in range(3):
        await web.push(f"report-{i:04d}", queue="m")
        assert await manager.fetch(["m"], "w", timeout=0) is not None
        await manager.ack(f"report-{i:04d}")
    await web.fail("mail-00001", queue="mm", jobtype="Mail")
    # Then the Metrics tab lists both types with executions, failures and run times
    page = (await web.client.get("/jobmetrics")).text
    rows = dict(re.findall(r'<tr data-jobtype="(\w+)">(.*?)</tr>', page, re.S))
    assert set(rows) == {"Report", "Mail"}
    numbers = re.findall(r'<td class="num">([^<]*)</td>', rows["Report"])
    assert numbers[:3] == ["3", "0", "0.0 %"] and numbers[4].endswith("ms")
    assert re.findall(r'<td class="num">([^<]*)</td>', rows["Mail"])[:3] == ["1", "1", "100.0 %"]
    chart = re.search(r'data-series="([^"]*)"', page)
    assert chart is not None
    data = json.loads(chart.group(1).replace("&#34;", '"'))
    assert len(data["x"]) == 60 and sum(data["types"]["Report"]) == 3
    # Windows of 1, 2, 4 and 8 hours; anything else falls back to 1
    for hours, points in (("2", 120), ("8", 480), ("5", 60)):
        text = (await web.client.get("/jobmetrics", params={"hours": hours})).text
        found = re.search(r'data-series="([^"]*)"', text)
        assert found is not None
        assert len(json.loads(found.group(1).replace("&#34;", '"'))["x"]) == points


async def test_metrics_page_empty(web: Web) -> None:
    assert "No job was acknowledged or failed" in (await web.client.get("/jobmetrics")).text


def test_failure_report_is_importable() -> None:
    assert FailureReport("E", "m", []).errtype == "E"


async def test_metrics_page_of_one_job_type(web: Web) -> None:
    # Given four Report jobs acknowledged and one failed
    manager = web.server.manager
    for i in range(5):
        await web.push(f"report-{i:04d}", queue="m")
        assert await manager.fetch(["m"], "w", timeout=0) is not None
        if i == 4:
            await manager.fail(f"report-{i:04d}", FailureReport("E", "m", []))
        else:
            await manager.ack(f"report-{i:04d}")
    # Then the list links to the type's page, which shows its totals, chart and histogram
    listing = (await web.client.get("/jobmetrics")).text
    assert 'href="/jobmetrics/Report?hours=1"' in listing
    page = (await web.client.get("/jobmetrics/Report", params={"hours": "2"})).text
    tiles = re.findall(r'<span class="value">([^<]*)</span><span class="label">(\w[^<]*)<', page)
    assert ("5", "Executions") in tiles and ("1", "Failures") in tiles
    assert ("20.0 %", "Failure rate") in tiles
    chart = re.search(r'id="type-chart" data-series="([^"]*)"', page)
    assert chart is not None
    data = json.loads(html.unescape(chart.group(1)))
    assert len(data["x"]) == 120 and sum(data["processed"]) == 5 and sum(data["failed"]) == 1
    bars = re.findall(r'<td class="num">(\d+)</td><td class="bar-cell">', page)
    assert sum(int(n) for n in bars) == 5
    # A type that did not run says so
    other = (await web.client.get("/jobmetrics/Nothing")).text
    assert "No execution of this job type in this window." in other
