"""The job page (values as text, collapsed when long, history wording), finding a job by
jid from every page, and the Batches tab; on SQLite and on Redis."""

from __future__ import annotations

import json
import re

from tests.webui.conftest import Web
from werk.manager.batches import batches_of
from werk.manager.retry import FailureReport
from werk.storage.base import Entry, Scored

NAME = "O'Brien & Zürich <x>"


async def test_job_page_shows_values_as_text_and_collapses_long_ones(web: Web) -> None:
    # Given a retry whose args and custom fields hold quotes, markup and non-ASCII text
    long_arg = "word " * 1000
    await web.fail("text-00001", args=[NAME, {"city": NAME}, long_arg], custom={"who": NAME})
    page = (await web.client.get("/retries/text-00001")).text
    # Then they read as text (escaped once for HTML), never as JSON escapes
    assert "O&#39;Brien &amp; Zürich &lt;x&gt;" in page
    assert "\\u0027" not in page and "\\u00fc" not in page and "\\u003c" not in page
    # And the 5,000-character arg is collapsed behind a summary saying its length
    assert re.search(r'<details class="long"><summary>word word .*\(5,000 characters\)', page)
    # And the history wording is accurate, never "Not yet enqueued" for a job that ran
    assert "Failed 1 time(s), retried 0 of 25 time(s)." in page
    assert "Not yet enqueued" not in page


async def test_history_wording_of_never_failed_and_exhausted_jobs(web: Web) -> None:
    await web.push("sched-00001", at="2999-01-01T00:00:00Z", retry=3)
    page = (await web.client.get("/scheduled/sched-00001")).text
    assert "Never failed; up to 3 retries if it does." in page
    assert "Not yet: due 2999-01-01 00:00:00 UTC" in page
    # A job that used its one retry: failed, retried now, failed again, so dead
    await web.fail("dead-00001", retry=1, queue="once")
    assert await web.server.manager.store.requeue("retries", ["dead-00001"], 0) == 1
    assert await web.server.manager.fetch(["once"], "w1", timeout=0) is not None
    await web.server.manager.fail("dead-00001", FailureReport("E", "again", []))
    dead = (await web.client.get("/dead/dead-00001")).text
    assert "Failed 2 time(s) and used all 1 retries." in dead


async def test_find_a_job_by_jid_wherever_it_is(web: Web) -> None:
    # Given a job in a queue, one running, one in each set
    await web.push("queued-0001", queue="mail")
    await web.push("running-001", queue="work")
    assert await web.server.manager.fetch(["work"], "wid-9", timeout=0) is not None
    await web.fail("retry-00001", queue="r")
    await web.fail("dead-000001", queue="d", retry=-1)
    await web.push("sched-00001", at="2999-01-01T00:00:00Z")
    # Then /find redirects to /jobs/<jid>, which shows queued and running jobs in place
    found = await web.client.get("/find", params={"jid": " queued-0001 "})
    assert found.status_code == 303 and found.headers["location"] == "/jobs/queued-0001"
    queued = (await web.client.get("/jobs/queued-0001")).text
    assert "Waiting in queue" in queued and 'href="/queues/mail"' in queued
    running = (await web.client.get("/jobs/running-001")).text
    assert "Running on" in running and "wid-9" in running and "Reserved until" in running
    # And jobs in a set go to that set's job page, where its actions are
    places = (("retry-00001", "retries"), ("dead-000001", "dead"), ("sched-00001", "scheduled"))
    for jid, where in places:
        response = await web.client.get(f"/jobs/{jid}")
        assert response.status_code == 303 and response.headers["location"] == f"/{where}/{jid}"
    missing = await web.client.get("/jobs/nope-nope")
    assert missing.status_code == 404 and "No job nope-nope" in missing.text
    # The search box is on every page, and jids of queued and running jobs are links
    for path in ("/", "/queues/mail", "/busy", "/retries", "/batches", "/cron", "/jobmetrics"):
        assert 'action="/find"' in (await web.client.get(path)).text, path
    assert 'href="/jobs/queued-0001"' in (await web.client.get("/queues/mail")).text
    assert 'href="/jobs/running-001"' in (await web.client.get("/busy")).text


async def test_batches_list_and_detail(web: Web) -> None:
    # Given a committed batch with two jobs, one acknowledged, one failed, and an open one
    batches = batches_of(web.server.manager)
    now = web.server.manager.clock()
    done = await batches.new(
        {"description": "nightly <reports>", "success": {"jobtype": "Notify", "args": []}}, now
    )
    await web.push("batch-job-1", queue="bq", custom={"bid": done})
    await web.push("batch-job-2", queue="bq", custom={"bid": done})
    await batches.commit(done, now)
    assert await web.server.manager.fetch(["bq"], "w", timeout=0) is not None
    await web.server.manager.ack("batch-job-1")
    await web.fail("batch-job-3", queue="bq2", custom={"bid": done})
    pending = await batches.new({"complete": {"jobtype": "Tidy", "args": []}}, now)
    # Then the list shows both, with states, counts and callbacks
    listing = (await web.client.get("/batches")).text
    row = re.search(rf'<tr data-bid="{done}">(.*?)</tr>', listing, re.S)
    assert row is not None
    cells = row.group(1)
    assert "nightly &lt;reports&gt;" in cells and "running" in cells
    assert re.findall(r'<td class="num">(\d+)</td>', cells) == ["3", "2", "1"]
    assert "success: Notify" in cells and "not yet" in cells
    assert f'data-bid="{pending}"' in listing and ">open<" in listing
    # And the detail page says the same
    detail = (await web.client.get(f"/batches/{done}")).text
    assert "3 in total, 2 pending, 1 failed" in detail and "Notify" in detail
    assert (await web.client.get("/batches/b-nope")).status_code == 404


async def test_batches_page_without_batches(web: Web) -> None:
    text = (await web.client.get("/batches")).text
    assert "No batches" in text


async def test_odd_jobs_do_not_break_the_job_pages(web: Web) -> None:
    # Given entries written by other tools: a body that is not JSON, odd field types
    store = web.server.manager.store
    odd = {
        "jid": "odd-000001",
        "jobtype": "Odd",
        "queue": "q",
        "args": {"not": "a list"},
        "retry": "many",
        "custom": "text",
        "failure": {"retry_count": "x", "backtrace": "one line", "message": None},
    }
    entries = [
        Scored(2e9, Entry("odd-000001", "q", "Odd", 5, 1800, json.dumps(odd).encode())),
        Scored(2e9, Entry("odd-000002", "q", "Odd", 5, 1800, b"{not json")),
    ]
    await store.add("retries", entries)
    # Then the list, each job's page and the search still answer
    assert (await web.client.get("/retries")).status_code == 200
    for jid in ("odd-000001", "odd-000002"):
        assert (await web.client.get(f"/retries/{jid}")).status_code in (200, 404)
        found = await web.client.get(f"/jobs/{jid}")
        assert found.status_code in (303, 404)
    page = await web.client.get("/retries/odd-000001")
    assert page.status_code == 200 and "Failed 1 time(s)" in page.text


async def test_a_damaged_batch_record_does_not_break_the_batches_page(web: Web) -> None:
    now = web.server.manager.clock()
    await web.server.manager.store.put_record("batch:b-broken", b"{oops", None, now)
    batches = batches_of(web.server.manager)
    good = await batches.new({"success": {"jobtype": "Done", "args": []}}, now)
    text = (await web.client.get("/batches")).text
    assert good in text and "b-broken" not in text
