"""``/metrics`` speaks OpenMetrics to a scraper that asks for it, the text format otherwise."""

from __future__ import annotations

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as text_format

from tests.webui.conftest import Web

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;"
    "version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
"""What Prometheus 2.x sends when it scrapes."""


async def test_openmetrics_when_the_scraper_asks(web: Web) -> None:
    # Given a queue with one job and one failed job
    await web.push("openmetrics-1", queue="om")
    await web.fail("openmetrics-2", queue="other")
    # When Prometheus scrapes /metrics
    response = await web.client.get("/metrics", headers={"accept": PROMETHEUS_ACCEPT})
    # Then the answer is OpenMetrics: its content type, types (info) and the # EOF end
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    families = {family.name: family for family in openmetrics(response.text)}
    assert families["werk"].type == "info"
    assert families["werk_jobs_failed"].type == "counter"
    assert [s.value for s in families["werk_jobs_failed"].samples if s.name.endswith("_total")] == [
        1
    ]
    sizes = {s.labels["queue"]: s.value for s in families["werk_queue_size"].samples}
    assert sizes["om"] == 1
    assert families["werk_command_duration_seconds"].type == "histogram"


async def test_text_format_without_accept(web: Web) -> None:
    # Given one job; When /metrics is read without an Accept header (curl, urllib)
    await web.push("textformat-1", queue="tf")
    response = await web.client.get("/metrics")
    # Then it is the Prometheus text format 0.0.4, and the info metric is a gauge there
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {family.name: family for family in text_format(response.text)}
    assert families["werk_info"].type == "gauge"
    assert [s.value for s in families["werk_queue_size"].samples] == [1.0]
