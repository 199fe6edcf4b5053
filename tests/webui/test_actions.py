"""Every action does what its button says, checked through ``/stats`` and the pages."""

from __future__ import annotations

import time

import pytest

from tests.webui.conftest import Web


async def test_pause_resume_and_clear_a_queue(web: Web) -> None:
    await web.push("job-000001")
    await web.push("job-000002")
    # When the queue is paused, FETCH skips it and the list says so
    response = await web.post("/queues/default", {"action": "pause"})
    assert response.status_code == 303 and response.headers["location"] == "/queues?done=pause"
    assert "paused" in (await web.client.get("/queues")).text
    assert await web.server.manager.fetch(["default"], "w", timeout=0) is None
    # When resumed, it is fetchable again
    await web.post("/queues/default", {"action": "resume", "back": "queue"})
    assert "badge warn" not in (await web.client.get("/queues")).text
    # When cleared, its jobs are gone
    response = await web.post("/queues/default", {"action": "delete"})
    assert response.headers["location"] == "/queues?done=clear"
    assert (await web.stats())["total_enqueued"] == 0
    assert "Cleared the queue." in (await web.client.get("/queues?done=clear")).text


async def test_delete_selected_jobs_from_a_queue(web: Web) -> None:
    for i in range(5):
        await web.push(f"job-{i:06d}")
    data = {"action": "delete_jobs", "jid": ["job-000001", "job-000003"], "page": "1"}
    response = await web.post("/queues/default", data)
    assert response.headers["location"] == "/queues/default?page=1&done=delete&n=2"
    assert (await web.stats())["queues"]["default"] == 3
    text = (await web.client.get(response.headers["location"])).text
    assert "Deleted 2 job(s)." in text
    assert "job-000001" not in text and "job-000002" in text


async def test_quiet_and_stop_processes(web: Web) -> None:
    processes = web.server.processes
    await processes.hello("wid-1", {"hostname": "a"})
    await processes.hello("wid-2", {"hostname": "b"})
    # One process goes quiet; it learns that on its next heartbeat
    response = await web.post("/busy", {"wid": "wid-1", "signal": "quiet"})
    assert response.headers["location"] == "/busy?done=quiet&n=1"
    assert await processes.state("wid-1") == "quiet"
    assert await processes.state("wid-2") == ""
    # Stop all
    response = await web.post("/busy", {"wid": "all", "signal": "terminate"})
    assert response.headers["location"] == "/busy?done=terminate&n=2"
    assert await processes.state("wid-1") == "terminate"
    assert await processes.state("wid-2") == "terminate"
    assert "stopping" in (await web.client.get("/busy")).text
    bad = await web.post("/busy", {"wid": "all", "signal": "explode"})
    assert bad.status_code == 400


async def _fill(web: Web, base: str, n: int = 4) -> list[str]:
    jids = [f"{base[:3]}-{i:06d}" for i in range(n)]
    for i, jid in enumerate(jids):
        queue = "a" if i % 2 else "b"
        if base == "scheduled":
            await web.push(jid, queue=queue, at="2999-01-01T00:00:00Z")
        else:
            await web.fail(jid, queue=queue, retry=-1 if base in ("dead", "morgue") else 25)
    return jids


def _canon(base: str) -> str:
    """The alias ``/morgue`` redirects to the canonical ``/dead``."""
    return "dead" if base == "morgue" else base


SET_OF = {"retries": "retries", "scheduled": "scheduled", "dead": "dead", "morgue": "dead"}
CASES = [
    ("retries", "retry"),
    ("retries", "delete"),
    ("retries", "kill"),
    ("scheduled", "add"),
    ("scheduled", "delete"),
    ("scheduled", "kill"),
    ("dead", "retry"),
    ("dead", "delete"),
    ("morgue", "retry"),
]


def _expect(
    sets: dict[str, int], enqueued: int, base: str, action: str, n: int, total: int
) -> None:
    left = total - n
    name = SET_OF[base]
    assert sets[name] == left
    if action in ("retry", "add"):
        assert enqueued == n
    elif action == "kill":
        assert sets["dead"] == n and enqueued == 0
    else:
        assert enqueued == 0


@pytest.mark.parametrize(("base", "action"), CASES)
async def test_set_action_on_one_job(web: Web, base: str, action: str) -> None:
    jids = await _fill(web, base)
    response = await web.post(f"/{base}/{jids[0]}", {"action": action})
    assert response.status_code == 303
    assert response.headers["location"] == f"/{_canon(base)}?done={action}&n=1"
    stats = await web.stats()
    _expect(stats["sets"], stats["total_enqueued"], base, action, 1, len(jids))
    assert (await web.client.get(f"/{base}/{jids[0]}")).status_code == 404


@pytest.mark.parametrize(("base", "action"), CASES)
async def test_set_action_on_selected_jobs(web: Web, base: str, action: str) -> None:
    jids = await _fill(web, base)
    response = await web.post(f"/{base}", {"action": action, "jid": jids[1:3], "page": "1"})
    assert response.headers["location"] == f"/{_canon(base)}?page=1&done={action}&n=2"
    stats = await web.stats()
    _expect(stats["sets"], stats["total_enqueued"], base, action, 2, len(jids))


@pytest.mark.parametrize(("base", "action"), CASES)
async def test_set_action_on_all_jobs(web: Web, base: str, action: str) -> None:
    jids = await _fill(web, base)
    response = await web.post(f"/{base}", {"action": f"{action}_all"})
    assert response.headers["location"] == f"/{_canon(base)}?done={action}&n={len(jids)}"
    stats = await web.stats()
    _expect(stats["sets"], stats["total_enqueued"], base, action, len(jids), len(jids))


@pytest.mark.parametrize(("base", "action"), CASES)
async def test_set_action_on_all_matching_a_filter(web: Web, base: str, action: str) -> None:
    # Given jobs in queues a and b, when "all" is pressed with the filter queue=a
    jids = await _fill(web, base, 6)
    response = await web.post(f"/{base}", {"action": f"{action}_all", "queue": "a"})
    # Then only the three jobs of queue a were touched, and the filter is kept
    assert response.headers["location"] == f"/{_canon(base)}?queue=a&done={action}&n=3"
    stats = await web.stats()
    _expect(stats["sets"], stats["total_enqueued"], base, action, 3, len(jids))
    if action in ("retry", "add"):
        assert stats["queues"] == {"a": 3, "b": 0} or stats["queues"].get("a") == 3


async def test_selected_action_with_nothing_selected_touches_nothing(web: Web) -> None:
    await _fill(web, "retries")
    response = await web.post("/retries", {"action": "delete"})
    assert response.headers["location"] == "/retries?done=delete&n=0"
    assert (await web.stats())["sets"]["retries"] == 4


async def test_an_action_a_set_does_not_offer_is_refused(web: Web) -> None:
    jids = await _fill(web, "dead")
    assert (await web.post("/dead", {"action": "kill_all"})).status_code == 400
    assert (await web.post(f"/dead/{jids[0]}", {"action": "bogus"})).status_code == 400
    assert (await web.stats())["sets"]["dead"] == 4


async def test_a_deleted_job_that_asked_for_a_result_ends_failed(web: Web) -> None:
    # Given a queued and a scheduled job that asked for a result
    await web.push("job-queued", custom={"result_ttl": 60})
    await web.push("job-later", custom={"result_ttl": 60}, at="2999-01-01T00:00:00Z")
    # When the web UI deletes them from their queue and set
    await web.post("/queues/default", {"action": "delete_jobs", "jid": ["job-queued"]})
    await web.post("/scheduled", {"action": "delete", "jid": ["job-later"]})
    # Then their results say failed, errtype Deleted, naming where they were
    results = web.server.manager.results
    assert results is not None
    for jid, where in (("job-queued", "queue default"), ("job-later", "the scheduled set")):
        doc = await results.state(jid, time.time())
        assert doc["state"] == "failed" and doc["error"]["errtype"] == "Deleted", doc
        assert doc["error"]["message"] == f"the job was deleted from {where}"


async def test_killed_jobs_and_a_cleared_queue_end_their_results_and_chains(web: Web) -> None:
    # Given a scheduled job asking for a result, a scheduled job carrying a chain whose next
    # step asks for one, and a queued job asking for a result
    step = {"jid": "job-step", "jobtype": "B", "args": [], "custom": {"result_ttl": 60}}
    later = "2999-01-01T00:00:00Z"
    await web.push("job-killed", custom={"result_ttl": 60}, at=later)
    await web.push("job-chained", custom={"chain": [step]}, at=later)
    await web.push("job-queued", custom={"result_ttl": 60})
    # When the web UI kills the first, kills all that are left, and clears the queue
    await web.post("/scheduled", {"action": "kill", "jid": ["job-killed"]})
    await web.post("/scheduled", {"action": "kill_all"})
    await web.post("/queues/default", {"action": "delete"})
    # Then the killed job is dead (errtype Killed), the chain ended and the queued job's
    # result failed (Deleted, naming its queue)
    results = web.server.manager.results
    assert results is not None
    doc = await results.state("job-killed", time.time())
    assert doc["state"] == "dead" and doc["error"]["errtype"] == "Killed", doc
    assert doc["error"]["message"] == "the job was killed from the scheduled set"
    doc = await results.state("job-step", time.time())
    assert doc["state"] == "failed" and doc["error"]["errtype"] == "ChainEnded", doc
    assert doc["error"]["message"] == (
        "the chain ended: job job-chained was killed from the scheduled set"
    )
    doc = await results.state("job-queued", time.time())
    assert doc["state"] == "failed" and doc["error"]["errtype"] == "Deleted", doc
    assert doc["error"]["message"] == "the job was deleted from queue default"
