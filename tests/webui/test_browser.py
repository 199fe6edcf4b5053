"""The web UI in real headless Chromium: every page, every action, and its effect.

Each test starts ``werk server`` with its web UI, fills it through the work protocol,
clicks through the pages as a user would (confirm dialogs accepted), and checks the effect
on the page and in ``/stats``. The server runs on the embedded store only: the pages'
scripts and forms are the same whatever the storage, and every action's effect and every
page are checked on each backend without a browser (test_actions.py, test_pages.py,
test_cron_and_metrics.py). Screenshots are saved as test artifacts (see
:func:`tests.webui.browser.screenshot`). Live refreshes are paused here, so a page never
changes under a click; ``test_browser_pages.py`` tests them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import SQLITE_ONLY, require
from tests.helpers import ServerProcess
from tests.webui.browser import OK, Filler, browser_missing, launch, screenshot

pytestmark = [pytest.mark.timeout(180), SQLITE_ONLY]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module."""
    reason = browser_missing()
    require(reason is None, reason or "")
    yield from launch()


@dataclass
class Session:
    """A server, a protocol filler and a browser page on its web UI."""

    server: ServerProcess
    filler: Filler
    page: Any

    def stats(self) -> dict[str, Any]:
        """GET ``/stats`` with the page's session; return its ``faktory`` section."""
        response = self.page.request.get("/stats")
        assert response.ok
        faktory: dict[str, Any] = response.json()["faktory"]
        return faktory

    def go(self, path: str) -> None:
        """Open a page and check it rendered with the summary bar."""
        response = self.page.goto(path)
        assert response is not None and response.status == 200, path
        assert self.page.locator(".summary .stat").count() == 7

    def click(self, selector: str) -> None:
        """Click and wait for the page that the action redirects to."""
        with self.page.expect_navigation():
            self.page.locator(selector).first.click()


@pytest.fixture
def ui(werk_server_factory: Callable[..., ServerProcess], browser: Any) -> Iterator[Session]:
    """A fresh server with its web UI, and a page in a fresh browser context."""
    server = werk_server_factory(web=True)
    filler = Filler(server)
    context = browser.new_context(
        base_url=f"http://127.0.0.1:{server.web_port}", viewport={"width": 1280, "height": 900}
    )
    context.add_init_script("localStorage.timeInterval = '2000'; localStorage.livePaused = '1'")
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield Session(server, filler, page)
    context.close()
    filler.close()
    assert not errors, errors


def test_dashboard_live_chart_history_and_tiles(ui: Session) -> None:
    # Given a failed job and a queued one
    ui.filler.fail("failed-0001", "q")
    ui.filler.push("queued-0001")
    # When the dashboard is open, the live chart polls /stats every 2 s
    ui.go("/")
    page = ui.page
    page.wait_for_function("Number(document.getElementById('live-chart').dataset.polls) >= 2")
    # Both charts are drawn by uPlot, with axes and a legend naming both series
    for chart in ("#live-chart", "#history-chart"):
        assert page.locator(f"{chart} canvas").count() >= 1
        legend = page.locator(f"{chart} .u-legend").inner_text()
        assert "processed" in legend and "failed" in legend
    # Hovering the history chart shows the values of that day in its legend
    box = page.locator("#history-chart .u-over").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)
    values = page.locator("#history-chart .u-legend .u-value").all_inner_texts()
    assert values[1:] == ["1", "1"], values
    assert page.locator("[data-stat=retries]").inner_text() == "1"
    # And the summary bar follows new jobs without a reload
    for i in range(3):
        ui.filler.push(f"queued-{i + 2:04d}")
    page.wait_for_function("document.querySelector('[data-stat=enqueued]').textContent === '4'")
    # The interval slider is remembered
    page.locator("#interval").fill("10")
    assert page.evaluate("localStorage.timeInterval") == "10000"
    assert page.locator("#interval-value").inner_text() == "10"
    for tile in ("Werk version", "Uptime", "Connections", "Memory (MB)"):
        assert page.get_by_text(tile).count() == 1
    assert "processed 1" in page.locator("#history .legend").inner_text()
    screenshot(page, "dashboard")
    # History lengths
    for days in (7, 90, 180, 30):
        ui.click(f"#history .choices a:text-is('{days} days')")
        assert page.url.endswith(f"/?days={days}")
        assert page.locator("#history a.active").inner_text() == f"{days} days"


def test_live_chart_shows_the_current_time_before_its_first_poll(
    werk_server_factory: Callable[..., ServerProcess], browser: Any
) -> None:
    # Given the dashboard at phone width, whose first /stats poll has not answered yet
    server = werk_server_factory(web=True)
    context = browser.new_context(
        base_url=f"http://127.0.0.1:{server.web_port}", viewport={"width": 390, "height": 844}
    )
    try:
        page = context.new_page()
        page.route("**/stats", lambda route: None)  # held: never answered
        page.goto("/")
        page.wait_for_function("document.getElementById('live-chart').uplot !== undefined")
        # Then the chart's time axis spans the present, not years away (it showed 2027-2029)
        low, high = page.evaluate(
            "(() => { const x = document.getElementById('live-chart').uplot.scales.x;"
            " return [x.min, x.max]; })()"
        )
        now = time.time()
        assert now - 3600 <= low <= now <= high <= now + 3600, (low, high, now)
        screenshot(page, "dashboard-phone-before-poll")
    finally:
        context.close()


def test_queues_pause_resume_delete_selected_and_clear(ui: Session) -> None:
    for i in range(30):
        ui.filler.push(f"mail-{i:05d}", queue="mail", priority=9 if i == 12 else 5)
    for i in range(3):
        ui.filler.push(f"def-{i:06d}")
    ui.go("/queues")
    page = ui.page
    row = page.locator("tr[data-queue=mail]")
    assert "30" in row.inner_text()
    screenshot(page, "queues")
    # Pause, then resume
    ui.click("tr[data-queue=mail] button[value=pause]")
    assert "paused" in page.locator("tr[data-queue=mail]").inner_text()
    assert page.locator(".notice").inner_text() == "Paused the queue."
    assert ui.filler.peer.call("FETCH mail") is None  # paused: nothing handed out
    ui.click("tr[data-queue=mail] button[value=resume]")
    assert "active" in page.locator("tr[data-queue=mail]").inner_text()
    # The queue page: fetch order, paged
    ui.click("tr[data-queue=mail] a")
    assert page.locator("tbody tr").first.locator("code").first.inner_text() == "mail-00012"
    assert "Page 1 of 2" in page.locator(".pager").inner_text()
    screenshot(page, "queue")
    ui.click(".pager a[rel=next]")
    assert page.locator("tbody tr").count() == 5
    ui.click(".pager a:text-is('« First')")
    # Delete two selected jobs
    delete = page.locator("button[value=delete_jobs]")
    assert delete.is_disabled()
    page.locator("input[name=jid][value=mail-00001]").check()
    page.locator("input[name=jid][value=mail-00002]").check()
    assert page.locator(".selected-count").inner_text() == "2 selected"
    ui.click("button[value=delete_jobs]")
    assert page.locator(".notice").inner_text() == "Deleted 2 job(s)."
    assert ui.stats()["queues"]["mail"] == 28
    assert page.locator("input[value=mail-00001]").count() == 0
    # Select a whole page and delete it
    page.locator("input.select-all").check()
    assert page.locator("input[name=jid]:checked").count() == 25
    ui.click("button[value=delete_jobs]")
    assert ui.stats()["queues"]["mail"] == 3
    # Clear the default queue from the list
    ui.go("/queues")
    ui.click("tr[data-queue=default] button[value=delete]")
    assert page.locator(".notice").inner_text() == "Cleared the queue."
    assert "default" not in ui.stats()["queues"]
    assert ui.stats()["total_enqueued"] == 3


def test_busy_quiet_and_stop_one_and_all(ui: Session) -> None:
    one = ui.filler.worker("wid-one", labels=["python", "blue"])
    two = ui.filler.worker("wid-two")
    ui.filler.push("running-001")
    assert isinstance(one.call("FETCH default"), bytes)

    def state(peer: Any, wid: str) -> Any:
        return peer.call("BEAT " + json.dumps({"wid": wid}))

    ui.go("/busy")
    page = ui.page
    text = page.locator("tr[data-wid=wid-one]").inner_text()
    assert "python" in text and "running" in text
    assert "running-001" in page.locator("table").nth(1).inner_text()
    screenshot(page, "busy")
    ui.click("tr[data-wid=wid-one] button[value=quiet]")
    assert state(one, "wid-one") == b'{"state":"quiet"}'
    assert "quiet" in page.locator("tr[data-wid=wid-one]").inner_text()
    ui.click("tr[data-wid=wid-one] button[value=terminate]")
    assert state(one, "wid-one") == b'{"state":"terminate"}'
    assert state(two, "wid-two") == OK
    ui.click("button[value=quiet]:text-is('Quiet all')")
    assert state(two, "wid-two") == b'{"state":"quiet"}'
    ui.click("button:text-is('Stop all')")
    assert state(two, "wid-two") == b'{"state":"terminate"}'
    assert page.locator(".notice").inner_text() == "Told 2 process(es) to stop."
    one.close()
    two.close()


CASES = [
    ("retries", "retry"),
    ("retries", "delete"),
    ("retries", "kill"),
    ("scheduled", "add"),
    ("scheduled", "delete"),
    ("scheduled", "kill"),
    ("dead", "retry"),
    ("dead", "delete"),
]


def _effect(ui: Session, name: str, action: str, size: int, moved: int) -> None:
    stats = ui.stats()
    assert stats["sets"][name] == size
    if action in ("retry", "add"):
        assert stats["total_enqueued"] == moved
    if action == "kill":
        assert stats["sets"]["dead"] == moved
    if action == "delete":
        assert stats["total_enqueued"] == 0


@pytest.mark.parametrize(("name", "action"), CASES)
def test_set_filter_and_action_on_one_selected_and_all(ui: Session, name: str, action: str) -> None:
    jids = [f"{name[:3]}-{action}-{i:03d}" for i in range(10)]
    ui.filler.fill(name, jids, ["a", "b"])
    page = ui.page
    ui.go(f"/{name}")
    assert page.locator("tbody tr").count() == 10
    screenshot(page, name)
    # Filters: by queue, by job type, by text
    page.fill("input[name=queue]", "a")
    ui.click("form.filter button")
    assert "queue=a" in page.url and page.locator("tbody tr").count() == 5
    assert "Matching the filter: 1–5 of 5" in page.locator(".meta").inner_text()
    page.fill("input[name=queue]", "")
    page.fill("input[name=q]", jids[3])
    ui.click("form.filter button")
    assert page.locator("tbody tr").count() == 1
    ui.click("a.reset")
    # One job, from its detail page
    ui.click(f"a[href$='/{name}/{jids[0]}']")
    assert jids[0] in page.locator("h1").inner_text()
    if name != "scheduled":
        assert f"no {jids[0]}" in page.locator("table.detail").inner_text()
    screenshot(page, f"{name}-job")
    ui.click(f"button[name=action][value={action}]")
    assert page.url.endswith(f"/{name}?done={action}&n=1")
    _effect(ui, name, action, 9, 1)
    # Two selected jobs
    page.locator(f"input[name=jid][value='{jids[1]}']").check()
    page.locator(f"input[name=jid][value='{jids[2]}']").check()
    ui.click(f"button[value={action}].needs-selection")
    assert page.locator(".notice").inner_text().startswith(("Moved 2", "Added 2", "Deleted 2"))
    _effect(ui, name, action, 7, 3)
    # All matching a filter: queue b holds jobs 3, 5, 7, 9 now
    page.fill("input[name=queue]", "b")
    ui.click("form.filter button")
    assert "All 4 matching:" in page.locator(".toolbar").inner_text()
    ui.click(f"button[value={action}_all]")
    assert "queue=b" in page.url and "No job matches the filter." in page.content()
    _effect(ui, name, action, 3, 7)
    # All
    ui.click("a.reset")
    ui.click(f"button[value={action}_all]")
    assert "No jobs." in page.locator("main").inner_text()
    _effect(ui, name, action, 0, 10)


def test_morgue_alias_and_not_found(ui: Session) -> None:
    ui.filler.fill("dead", ["dead-alias-1"], ["a"])
    ui.go("/morgue")
    assert ui.page.locator("tbody tr").count() == 1
    response = ui.page.goto("/retries/nope")
    assert response is not None and response.status == 404
    assert "Not found" in ui.page.locator("h1").inner_text()


@pytest.fixture
def ui_with_features(
    werk_server_factory: Callable[..., ServerProcess], browser: Any, tmp_path: Any
) -> Iterator[Session]:
    """A server configured with a cron entry and a throttle, and a browser page on it."""
    confd = tmp_path / "conf" / "conf.d"
    confd.mkdir(parents=True)
    (confd / "cron.toml").write_text(
        '[[cron]]\nname = "reports"\nschedule = "*/5 * * * *"\n'
        '[cron.job]\ntype = "Report"\nqueue = "crq"\n'
    )
    (confd / "throttles.toml").write_text("[throttles]\ntq = { concurrency = 2, timeout = 30 }\n")
    server = werk_server_factory(web=True, extra_args=["-c", str(confd.parent)])
    context = browser.new_context(base_url=f"http://127.0.0.1:{server.web_port}")
    page = context.new_page()
    yield Session(server, Filler(server), page)
    context.close()


def test_cron_and_throttles_tabs(ui_with_features: Session) -> None:
    ui = ui_with_features
    ui.go("/")
    with ui.page.expect_navigation():
        ui.page.locator('nav a[href$="/cron"]').first.click()
    assert "every 5 minutes" in ui.page.content()
    assert "Report" in ui.page.locator("table").first.inner_text()
    screenshot(ui.page, "cron")
    with ui.page.expect_navigation():
        ui.page.locator('a[href*="/cron/"]').first.click()
    assert "reports" in ui.page.content()
    screenshot(ui.page, "cron-entry")
    # Enqueue now pushes the job at once; Disable (confirmed) and Enable switch the entry
    page = ui.page
    page.on("dialog", lambda dialog: dialog.accept())
    ui.click("button[value=enqueue]")
    assert page.locator(".notice").inner_text() == "Enqueued the cron entry's job now."
    assert ui.stats()["queues"]["crq"] == 1
    assert "Enqueued now from the web UI" in page.locator("main").inner_text()
    ui.click("button[value=disable]")
    assert page.locator(".notice[role=status]").inner_text() == "Disabled the cron entry."
    assert page.locator("h1 .badge").inner_text() == "disabled"
    ui.go("/cron")
    assert "disabled" in page.locator("tr[data-cron=reports]").inner_text()
    ui.click("tr[data-cron=reports] button[value=enable]")
    assert page.locator("tr[data-cron=reports] button[value=disable]").count() == 1
    ui.filler.peer.call(
        json.dumps({"jid": "tq-job-0001", "jobtype": "T", "args": [], "queue": "tq"}).join(
            ["PUSH ", ""]
        )
    )
    assert isinstance(ui.filler.peer.call("FETCH tq"), bytes)
    ui.go("/throttles")
    cells = ui.page.locator("tbody tr", has_text="tq").first.locator("td")
    assert cells.nth(2).inner_text() == "2 concurrent"
    assert (cells.nth(3).inner_text(), cells.nth(4).inner_text()) == ("1", "1")  # taken, free
    screenshot(ui.page, "throttles")
