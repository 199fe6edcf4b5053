"""Every page renders, shows what the store holds, pages and filters in the store."""

from __future__ import annotations

import pytest

from tests.webui.conftest import Web

PAGES = ["/", "/queues", "/busy", "/retries", "/scheduled", "/dead", "/morgue"]


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_renders_with_the_summary_bar(web: Web, path: str) -> None:
    # Given one job in each place
    await web.fail("retry-00001")
    await web.fail("dead-000001", retry=-1)
    await web.push("queued-0001")
    await web.push("sched-00001", at="2999-01-01T00:00:00Z")
    # When the page is opened
    response = await web.client.get(path)
    # Then it renders, with the summary bar counts
    assert response.status_code == 200
    text = response.text
    for label in ("Processed", "Failed", "Busy", "Enqueued", "Retries", "Scheduled", "Dead"):
        assert label in text
    assert 'data-stat="retries">1<' in text
    assert 'data-stat="dead">1<' in text
    assert 'data-stat="scheduled">1<' in text
    assert 'data-stat="enqueued">1<' in text


async def test_dashboard_history_days_are_capped(web: Web) -> None:
    for days, shown in (("7", 7), ("90", 90), ("180", 180), ("100000", 180), ("x", 30)):
        response = await web.client.get("/", params={"days": days})
        assert response.status_code == 200
        assert f"over {shown} days" in response.text


async def test_dashboard_counts_today(web: Web) -> None:
    await web.fail("retry-00001")
    response = await web.client.get("/?days=7")
    assert "processed 1" in response.text and "failed 1" in response.text


async def test_static_assets_are_served_and_cached(web: Web) -> None:
    for name, kind in (("werk.css", "text/css"), ("werk.js", "javascript"), ("favicon.svg", "svg")):
        response = await web.client.get(f"/static/{name}")
        assert response.status_code == 200
        assert kind in response.headers["content-type"]
        assert response.headers["cache-control"] == "public, max-age=3600"


async def test_health_and_stats_documents(web: Web) -> None:
    health = (await web.client.get("/health")).json()
    assert set(health) == {"now", "server"}
    assert set(health["server"]) == {
        "description",
        "faktory_version",
        "connections",
        "command_count",
    }
    stats = (await web.client.get("/stats")).json()
    assert {"faktory", "server", "now"} <= set(stats)


async def test_queue_list_and_queue_page_in_fetch_order(web: Web) -> None:
    # Given 30 jobs, one of them of a higher priority
    for i in range(30):
        await web.push(f"job-{i:05d}", priority=9 if i == 17 else 5)
    # Then the list shows the queue and its size
    listing = await web.client.get("/queues")
    assert "default" in listing.text and ">30<" in listing.text
    # And the queue page shows 25 jobs, the priority-9 job first, then FIFO
    first = (await web.client.get("/queues/default")).text
    order = [f"job-{i:05d}" for i in [17, *range(17), *range(18, 30)]]
    positions = [first.find(f"<code>{jid}</code>") for jid in order[:25]]
    assert all(p > 0 for p in positions) and positions == sorted(positions)
    assert f"<code>{order[25]}</code>" not in first
    assert "Page 1 of 2" in first
    second = (await web.client.get("/queues/default?page=2")).text
    assert all(f"<code>{jid}</code>" in second for jid in order[25:])


async def test_unknown_queue_and_job_are_404(web: Web) -> None:
    assert (await web.client.get("/queues/nothing")).status_code == 404
    for base in ("retries", "scheduled", "dead", "morgue"):
        response = await web.client.get(f"/{base}/missing-jid")
        assert response.status_code == 404
        assert "Not found" in response.text


async def test_set_pages_are_paged_and_filtered_in_the_store(web: Web) -> None:
    # Given 30 retries in two queues and two job types
    for i in range(30):
        await web.fail(f"r-{i:06d}", queue="a" if i % 3 else "b", jobtype="X" if i < 10 else "Y")
    # Then the listing has two pages
    page = (await web.client.get("/retries")).text
    assert "1–25 of 30" in page and "Page 1 of 2" in page
    assert "26–30 of 30" in (await web.client.get("/retries?page=2")).text
    # And filters narrow the listing and its total
    only_b = (await web.client.get("/retries?queue=b")).text
    assert "1–10 of 10" in only_b and "r-000001" not in only_b
    x_in_a = (await web.client.get("/retries?queue=a&jobtype=X")).text
    assert "1–6 of 6" in x_in_a
    text = (await web.client.get("/retries", params={"q": "boom r-000007"})).text
    assert "1–1 of 1" in text and "r-000007" in text
    none = (await web.client.get("/retries?jobtype=Nope")).text
    assert "No job matches the filter." in none


async def test_job_detail_pages(web: Web) -> None:
    await web.fail("retry-00001", custom={"tenant": "acme"})
    await web.fail("dead-000001", retry=-1)
    await web.push("sched-00001", at="2999-01-01T00:00:00Z", args=["<b>x</b>"])
    retry = (await web.client.get("/retries/retry-00001")).text
    for needle in (
        "RuntimeError",
        "boom retry-00001",
        "line 1",
        "acme",
        "Next retry",
        "Failed 1 time(s), retried 0 of 25 time(s).",
    ):
        assert needle in retry
    dead = (await web.client.get("/morgue/dead-000001")).text
    assert "Died" in dead and "boom dead-000001" in dead
    assert "Failed 1 time(s); retries are off (retry: -1)." in dead
    assert "-1 remaining" not in dead and "Not yet enqueued" not in dead
    sched = (await web.client.get("/scheduled/sched-00001")).text
    assert "2999-01-01 00:00:00 UTC" in sched
    assert "<b>x</b>" not in sched and "&lt;b&gt;x&lt;/b&gt;" in sched


async def test_busy_page_lists_processes_and_reservations(web: Web) -> None:
    # Given a process and a job it holds
    await web.server.processes.hello("wid-1", {"hostname": "box", "pid": 42, "labels": ["py"]})
    await web.push("running-01")
    assert await web.server.manager.fetch(["default"], "wid-1", timeout=0) is not None
    # Then the busy page shows both
    text = (await web.client.get("/busy")).text
    for needle in ("wid-1", "box:42", ">py<", "running", "running-01"):
        assert needle in text
