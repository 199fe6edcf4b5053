"""Jobs of any size: every page that shows job content does work bounded by what it shows
(a cut args preview, the first 64 KB of the job), and the full job is one link away."""

from __future__ import annotations

import json

from tests.webui.conftest import Web

INTS = list(range(1_000_000))
TEXT = "é" * 400_000
PAGE_LIMIT = 120_000
"""Bytes of HTML a page listing two huge jobs may take (before: several MB)."""
JOB_PAGE_LIMIT = 200_000
"""Bytes of HTML a huge job's page may take: 64 KB of its text and its first args."""


async def test_list_pages_show_a_cut_preview_of_huge_jobs(web: Web) -> None:
    # Given huge jobs waiting, scheduled, failed, dead and running
    for prefix, fields in (("ints", {"args": INTS}), ("text", {"args": [TEXT, 2]})):
        await web.push(f"{prefix}-queued", queue="big", **fields)
        await web.push(f"{prefix}-sched", at="2999-01-01T00:00:00Z", **fields)
        await web.fail(f"{prefix}-retry", queue="f", **fields)
        await web.fail(f"{prefix}-dead", queue="f", retry=-1, **fields)
    await web.push("ints-busy", queue="run", args=INTS)
    assert await web.server.manager.fetch(["run"], "w1", timeout=0) is not None
    for path, jid in (
        ("/queues/big", "ints-queued"),
        ("/scheduled", "ints-sched"),
        ("/retries", "ints-retry"),
        ("/dead", "ints-dead"),
        ("/busy", "ints-busy"),
    ):
        response = await web.client.get(path)
        # Then each page is small and still shows the start of the args
        assert response.status_code == 200, path
        assert len(response.content) < PAGE_LIMIT, (path, len(response.content))
        assert jid in response.text
        if path != "/busy":
            assert "0, 1, 2, 3, 4" in response.text, path
            assert "&#34;éééé" in response.text, path


async def test_job_page_of_a_huge_job_is_cut_and_links_the_full_job(web: Web) -> None:
    await web.push("ints-queued", queue="big", args=INTS)
    await web.fail("text-retry", queue="f", args=[TEXT])
    for path in ("/jobs/ints-queued", "/retries/text-retry", "/jobs/text-retry"):
        response = await web.client.get(path, follow_redirects=True)
        assert response.status_code == 200, path
        assert len(response.content) < JOB_PAGE_LIMIT, (path, len(response.content))
        assert "Download the full job (JSON)" in response.text
        assert "bytes in all" in response.text
    # And the link gives the stored job as it is, whole
    raw = await web.client.get("/jobs/ints-queued?format=json")
    assert raw.headers["content-type"] == "application/json"
    assert json.loads(raw.content)["args"] == INTS
    moved = await web.client.get("/jobs/text-retry?format=json", follow_redirects=True)
    assert json.loads(moved.content)["args"] == [TEXT]


async def test_job_page_of_a_normal_job_shows_it_whole(web: Web) -> None:
    await web.push("small-0001", queue="q", args=[1, {"a": "b"}])
    page = (await web.client.get("/jobs/small-0001")).text
    assert "Download the full job" not in page
    assert "&#34;jid&#34;: &#34;small-0001&#34;" in page or '"jid": "small-0001"' in page
