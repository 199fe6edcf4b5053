"""Every page in headless Chromium at 1280×900 and at 390×844, with real data, and the
live pages updating without a reload.

One server is filled through the work protocol with what a busy installation holds:
hundreds of jobs across queues (long and non-ASCII args), retries with long errors and
backtraces, dead and scheduled jobs, running workers, a batch, a cron entry, a throttle
and job metrics. Each page must fit its window (``scrollWidth <= innerWidth``: no
sideways page scroll; wide tables scroll in their own box) and is saved as a screenshot
(``WERK_DOCS_SCREENSHOTS=1`` also refreshes the ones docs/webui.md shows).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import SQLITE_ONLY, require
from tests.helpers import Peer, ServerProcess
from tests.webui.browser import OK, Filler, browser_missing, launch, screenshot

pytestmark = pytest.mark.timeout(300)

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
LONG_ARG = "Zürich O'Brien & <b>bold</b> " * 150
CRON = (
    '[[cron]]\nname = "reports"\nschedule = "*/5 * * * *"\n'
    '[cron.job]\ntype = "NightlyReport"\nqueue = "reports"\nargs = ["all", 7]\n'
)
THROTTLE = "[throttles]\nmail = { concurrency = 3, timeout = 60 }\n"


WIDS = {"wid-0-xxxxxxxxxxxx": ["ruby", "mail"], "wid-1-xxxxxxxxxxxx": ["python"]}


@dataclass
class Filled:
    """A server full of data and the names of things on it."""

    server: ServerProcess
    jids: dict[str, str]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module."""
    reason = browser_missing()
    require(reason is None, reason or "")
    yield from launch()


def _fill(filler: Filler, peer: Peer) -> dict[str, str]:
    queues = ["default", "mail", "reports", "images-and-thumbnails-for-the-shop"]
    jobs = [
        {
            "jid": f"queued-{i:05d}",
            "jobtype": ["Report", "Mailer::Welcome", "ResizeImage"][i % 3],
            "queue": queues[i % 4],
            "args": [LONG_ARG if i % 25 == 0 else f"user-{i}", {"id": i, "tags": ["a", "b"]}],
            "priority": 9 if i % 50 == 0 else 5,
        }
        for i in range(240)
    ]
    assert peer.call("PUSHB " + json.dumps(jobs)) == b"{}"
    for i in range(30):
        jid, queue = f"retry-{i:05d}", f"failing{i % 3}"
        # As if it failed 10 times already: the next retry is hours away, not 15-44 s, so
        # the retries stay in their set while the tests look at them.
        failure = {"retry_count": 9, "remaining": 16, "failed_at": "2026-01-01T00:00:00Z"}
        filler.push(jid, queue=queue, args=[LONG_ARG if i == 0 else i, "x"], failure=failure)
        assert isinstance(peer.call(f"FETCH {queue}"), bytes)
        report = {
            "jid": jid,
            "errtype": "Net::ReadTimeout" if i % 2 else "ActiveRecord::RecordNotFound",
            "message": f"Couldn't find Account with 'id'={i} " + "while syncing; " * 40,
            "backtrace": [f"/app/lib/sync/step_{n}.rb:{n * 7}:in `run'" for n in range(30)],
        }
        assert peer.call("FAIL " + json.dumps(report)) == OK
    filler.fill("dead", [f"dead-{i:06d}" for i in range(12)], ["d1", "d2"])
    filler.fill("scheduled", [f"sched-{i:05d}" for i in range(20)], ["later"])
    for i in range(24):  # metrics: three job types acknowledged, some failed
        jobtype = ["Report", "Mailer::Welcome", "ResizeImage"][i % 3]
        filler.push(f"ran-{i:06d}", queue="metrics", jobtype=jobtype)
        assert isinstance(peer.call("FETCH metrics"), bytes)
        if i % 8 == 7:
            report = {"jid": f"ran-{i:06d}", "errtype": "E", "message": "m", "backtrace": []}
            assert peer.call("FAIL " + json.dumps(report)) == OK
        else:
            assert peer.call("ACK " + json.dumps({"jid": f"ran-{i:06d}"})) == OK
    spec = {"description": "Nightly exports", "success": {"jobtype": "ExportDone", "args": []}}
    bid = peer.call("BATCH NEW " + json.dumps(spec))
    assert isinstance(bid, bytes)
    for i in range(3):
        filler.push(f"batch-{i:05d}", queue="exports", custom={"bid": bid.decode()})
    assert peer.call(f"BATCH COMMIT {bid.decode()}") == OK
    return {"bid": bid.decode(), "queued": "queued-00001"}


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Filled]:
    """One server (embedded SQLite) with a cron entry, a throttle and a lot of data."""
    root = tmp_path_factory.mktemp("pages")
    confd = root / "conf" / "conf.d"
    confd.mkdir(parents=True)
    (confd / "cron.toml").write_text(CRON)
    (confd / "throttles.toml").write_text(THROTTLE)
    server = ServerProcess(root / "data", web=True, extra_args=["-c", str(confd.parent)])
    server.start()
    filler = Filler(server)
    peer = Peer(server.host, server.port)
    assert peer.hello() == OK
    jids = _fill(filler, peer)
    for wid, labels in WIDS.items():
        worker = filler.worker(wid, labels=labels)
        for _ in range(2):
            body = worker.call("FETCH default mail")
            assert isinstance(body, bytes)
            jids.setdefault("running", json.loads(body)["jid"])
    yield Filled(server, jids)
    server.stop()


@pytest.fixture
def workers(filled: Filled) -> Iterator[list[Peer]]:
    """The two worker processes, connected for this test (each test closes its peers)."""
    filler = Filler(filled.server)
    yield [filler.worker(wid, labels=labels) for wid, labels in WIDS.items()]


def _pages(jids: dict[str, str]) -> list[tuple[str, str]]:
    return [
        ("dashboard", "/"),
        ("queues", "/queues"),
        ("queue", "/queues/mail"),
        ("busy", "/busy"),
        ("retries", "/retries"),
        ("retries-job", "/retries/retry-00000"),
        ("scheduled", "/scheduled"),
        ("scheduled-job", "/scheduled/sched-00000"),
        ("dead", "/dead"),
        ("dead-job", "/dead/dead-000000"),
        ("batches", "/batches"),
        ("batch", f"/batches/{jids['bid']}"),
        ("metrics", "/jobmetrics"),
        ("metrics-type", "/jobmetrics/Mailer::Welcome"),
        ("cron", "/cron"),
        ("cron-entry", "/cron/reports"),
        ("throttles", "/throttles"),
        ("job-queued", f"/jobs/{jids['queued']}"),
        ("job-running", f"/jobs/{jids['running']}"),
    ]


FITS = "document.documentElement.scrollWidth <= window.innerWidth"


@pytest.mark.parametrize(
    ("label", "viewport", "locale"),
    [
        ("desktop", DESKTOP, "en-US"),
        ("phone", PHONE, "en-US"),
        ("phone-de", PHONE, "de-DE"),  # the longest words
        ("desktop-ja", DESKTOP, "ja-JP"),
    ],
)
def test_every_page_fits_the_window(
    filled: Filled,
    workers: list[Peer],
    browser: Any,
    label: str,
    viewport: dict[str, int],
    locale: str,
) -> None:
    context = browser.new_context(
        base_url=f"http://127.0.0.1:{filled.server.web_port}",
        viewport=viewport,
        device_scale_factor=1,
        locale=locale,
    )
    context.add_init_script("localStorage.livePaused = '1'")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        for name, path in _pages(filled.jids):
            response = page.goto(path, wait_until="load")
            assert response is not None and response.status == 200, path
            assert page.locator(".summary .stat").count() == 7, path
            if name == "busy":
                assert page.locator("tr[data-wid]").count() == 2
            sizes = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert page.evaluate(FITS), f"{path} at {label}: scrollWidth, innerWidth = {sizes}"
            docs = label in ("desktop", "phone") or name in ("dashboard", "busy")
            screenshot(page, f"{name}-{label}", docs=docs)
        missing = page.goto("/jobs/no-such-job")
        assert missing is not None and missing.status == 404 and page.evaluate(FITS)
    finally:
        context.close()
    assert not errors, errors


def test_phone_layout_keeps_actions_and_args_usable(
    filled: Filled, workers: list[Peer], browser: Any
) -> None:
    context = browser.new_context(
        base_url=f"http://127.0.0.1:{filled.server.web_port}", viewport=PHONE
    )
    context.add_init_script("localStorage.livePaused = '1'")
    page = context.new_page()
    try:
        # The tabs stay one row (scrolling sideways in their own box)
        page.goto("/busy")
        nav = page.locator("header nav").bounding_box()
        assert nav is not None and nav["height"] < 50
        # Every process's Quiet and Stop buttons are on screen, without scrolling sideways
        buttons = page.locator("table.reflow button")
        assert buttons.count() == 4
        for i in range(buttons.count()):
            box = buttons.nth(i).bounding_box()
            assert box is not None and 0 <= box["x"] and box["x"] + box["width"] <= PHONE["width"]
        # Args keep a readable width in a table that scrolls in its own box
        page.goto("/queues/mail")
        cell = page.locator("td.args").first.bounding_box()
        assert cell is not None and cell["width"] >= 180
        wrap = page.locator(".table-wrap").first
        assert wrap.evaluate("e => e.scrollWidth > e.clientWidth")  # the box scrolls
        # A long arg is cut with an ellipsis and opens in place on a click
        clamp = page.locator("tr[data-jid=queued-00025] code.clamp")
        before = clamp.bounding_box()
        clamp.click()
        after = clamp.bounding_box()
        assert before is not None and after is not None and after["height"] > before["height"] * 3
    finally:
        context.close()


@pytest.fixture
def live(werk_server_factory: Callable[..., ServerProcess], browser: Any) -> Iterator[Any]:
    """A fresh server and a page that refreshes live every 2 s."""
    server = werk_server_factory(web=True)
    context = browser.new_context(base_url=f"http://127.0.0.1:{server.web_port}")
    context.add_init_script("localStorage.timeInterval = '2000'; localStorage.livePaused = '0'")
    page = context.new_page()
    yield server, page
    context.close()


def _refreshes(page: Any) -> int:
    return int(page.locator("#live-bar").get_attribute("data-refreshes") or 0)


@SQLITE_ONLY
def test_busy_and_retries_update_without_a_reload(live: Any) -> None:
    server, page = live
    filler = Filler(server)
    try:
        # Given the Busy page is open, marked so that a reload would be seen
        page.goto("/busy")
        page.evaluate("window.notReloaded = true")
        # When a worker connects and takes a job, the page shows both by itself
        filler.push("live-run-001", queue="live")
        worker = filler.worker("wid-live-1", labels=["live"])
        assert isinstance(worker.call("FETCH live"), bytes)
        page.wait_for_selector("tr[data-wid=wid-live-1]", timeout=15_000)
        page.wait_for_selector("tr[data-jid=live-run-001]", timeout=15_000)
        assert page.evaluate("window.notReloaded") is True
        page.wait_for_function("document.querySelector('[data-stat=busy]').textContent === '1'")
        # Given the Retries page is open
        page.goto("/retries")
        page.evaluate("window.notReloaded = true")
        filler.fail("live-fail-001", "lq")
        page.wait_for_selector("tr[data-jid=live-fail-001]", timeout=15_000)
        assert page.evaluate("window.notReloaded") is True
        # When paused, new jobs do not appear; when resumed, they do
        page.click("#live-toggle")
        assert page.locator("#live-toggle").inner_text() == "Resume"
        assert page.locator(".live-state").inner_text() == "Paused"
        count = _refreshes(page)
        filler.fail("live-fail-002", "lq")
        page.wait_for_timeout(5_000)
        assert page.locator("tr[data-jid=live-fail-002]").count() == 0
        assert _refreshes(page) == count
        page.click("#live-toggle")
        page.wait_for_selector("tr[data-jid=live-fail-002]", timeout=15_000)
        # A ticked job holds the refresh, so the selection is never lost
        page.locator("input[name=jid][value=live-fail-001]").check()
        assert page.locator(".live-state").inner_text() == "Paused while jobs are selected"
        filler.fail("live-fail-003", "lq")
        page.wait_for_timeout(5_000)
        assert page.locator("tr[data-jid=live-fail-003]").count() == 0
        assert page.locator("input[name=jid][value=live-fail-001]").is_checked()
        assert page.evaluate("window.notReloaded") is True
        worker.close()
    finally:
        filler.close()
