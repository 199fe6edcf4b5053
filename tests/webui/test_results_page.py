"""The job page by jid (``/jobs/<jid>``) shows a job's result or last error; INFO
(``/stats``) and ``/metrics`` count the stored results."""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families

from tests.webui.conftest import Web


async def test_a_finished_job_shows_its_result(web: Web) -> None:
    # Given a job that asked for its result and succeeded with one
    await web.push("withresult1", queue="r", custom={"result_ttl": 600})
    assert await web.server.manager.fetch(["r"], "w1", timeout=0) is not None
    value = {"rows": 3, "name": "<b>report</b>"}
    await web.server.manager.ack("withresult1", json.dumps(value).encode())
    # When its page is opened
    response = await web.client.get("/jobs/withresult1")
    # Then it shows the state and the result (escaped)
    assert response.status_code == 200
    assert 'data-state="succeeded"' in response.text
    assert "&#34;rows&#34;: 3" in response.text or "&quot;rows&quot;: 3" in response.text
    assert "&lt;b&gt;report&lt;/b&gt;" in response.text
    assert (await web.stats())["results"] == {"succeeded": 1, "failed": 0}
    metrics = await web.client.get("/metrics")
    families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
    samples = {s.labels["state"]: s.value for s in families["werk_results_stored"].samples}
    assert samples == {"succeeded": 1.0, "failed": 0.0}


async def test_failed_waiting_and_unknown_jobs(web: Web) -> None:
    await web.fail("failedjob1", retry=0, custom={"result_ttl": 600})
    await web.push("queuedjob1", queue="later", custom={"result_ttl": 600})
    failed = await web.client.get("/jobs/failedjob1")
    assert 'data-state="failed"' in failed.text and "boom failedjob1" in failed.text
    assert "line 1" in failed.text
    queued = await web.client.get("/jobs/queuedjob1")  # still in its queue: the job page
    assert queued.status_code == 200 and "data-state" not in queued.text
    assert (await web.client.get("/jobs/nosuchjob1")).status_code == 404
