"""A FAIL with errtype ``werk.RateLimited`` reschedules the job without using a retry."""

from __future__ import annotations

import json
import random
from typing import Any

from tests.features.conftest import Clock
from tests.helpers import Peer, push_line
from werk.manager.manager import Manager
from werk.manager.retry import MAX_RATE_LIMITED, FailureReport, rate_limited, record_failure
from werk.protocol.resp import Simple
from werk.storage.base import Store

OK = Simple("OK")
NOW = 1_800_000_000.0


def limited(message: str = "retry after 30") -> FailureReport:
    return FailureReport("werk.RateLimited", message, [])


def test_delay_from_the_message_without_touching_failure() -> None:
    job: dict[str, Any] = {"jid": "j", "retry": 3}
    decision = record_failure(job, limited("retry after 30"), NOW, random.Random(1))
    assert decision.target == "retries"
    assert NOW + 30 <= decision.score <= NOW + 33
    assert "failure" not in job
    assert job["rate_limited"]["count"] == 1
    assert job["rate_limited"]["message"] == "retry after 30"


def test_default_delay_doubles_and_is_capped() -> None:
    job: dict[str, Any] = {"jid": "j"}
    delays = []
    for _ in range(10):
        decision = record_failure(job, limited("no hint"), NOW, random.Random(2))
        delays.append(decision.score - NOW)
    assert 15 <= delays[0] <= 16.5 and 30 <= delays[1] <= 33
    assert 3600 <= delays[-1] <= 3960


def test_a_previous_failure_keeps_its_count() -> None:
    job: dict[str, Any] = {"jid": "j", "retry": 2}
    record_failure(job, FailureReport("Boom", "x", []), NOW)
    before = dict(job["failure"])
    record_failure(job, limited(), NOW)
    assert job["failure"] == before
    record_failure(job, FailureReport("Boom", "again", []), NOW)
    assert job["failure"]["retry_count"] == 1  # the rate-limited FAIL did not count


def test_too_many_reschedules_fail_as_usual() -> None:
    job: dict[str, Any] = {"jid": "j", "retry": 1, "rate_limited": {"count": MAX_RATE_LIMITED}}
    assert rate_limited(job, limited(), NOW) is None
    decision = record_failure(job, limited(), NOW)
    assert decision.target == "retries" and job["failure"]["retry_count"] == 0


async def test_manager_reschedules_without_using_a_retry(store: Store) -> None:
    clock = Clock(NOW)
    manager = Manager(store, clock=clock)
    now = NOW
    await manager.push({"jid": "job-limited", "jobtype": "Charge", "args": [], "retry": 1})
    for round_ in range(3):
        assert await manager.fetch(["default"], "w", timeout=0) is not None
        await manager.fail("job-limited", limited("retry after 5"))
        item = await store.set_get("retries", "job-limited")
        assert item is not None
        assert now + 5 <= item.score <= now + 5.5
        job = json.loads(item.entry.body)
        assert "failure" not in job and job["rate_limited"]["count"] == round_ + 1
        clock.now = now = item.score
        assert await manager.move_due("retries") == 1
    # A real failure still has its one retry
    assert await manager.fetch(["default"], "w", timeout=0) is not None
    await manager.fail("job-limited", FailureReport("Boom", "x", []))
    assert await store.set_get("retries", "job-limited") is not None


def test_over_the_protocol(peer: Peer) -> None:
    assert peer.call(push_line("job-proto-limited", retry=0)) == OK
    job = peer.call("FETCH default")
    assert isinstance(job, bytes)
    fail = {"jid": "job-proto-limited", "errtype": "werk.RateLimited", "message": "retry after 9"}
    assert peer.call("FAIL " + json.dumps(fail)) == OK
    info = json.loads(peer.call("INFO"))  # type: ignore[arg-type]
    # retry 0 would discard an ordinary failure; a rate-limited job waits in retries
    assert info["faktory"]["sets"]["retries"] == 1
