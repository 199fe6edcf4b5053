"""Actions in the web UI leave one log line: what, how many, and from which address."""

from __future__ import annotations

import logging

import pytest

from tests.webui.conftest import Web

AUDIT = "werk.webui.audit"


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == AUDIT]


async def test_deleting_dead_jobs_is_logged_with_count_filter_and_address(
    web: Web, caplog: pytest.LogCaptureFixture
) -> None:
    # Given 15 dead jobs of queue a and 2 of queue b
    for i in range(17):
        await web.fail(f"job-{i:06d}", queue="a" if i < 15 else "b", retry=-1)
    caplog.set_level(logging.INFO, logger=AUDIT)
    # When every dead job of queue a is deleted from the web UI
    await web.post("/dead", {"action": "delete_all", "queue": "a"})
    # Then one line says what, how many, with which filter, and from where
    assert audit_lines(caplog) == [
        "web UI action from 127.0.0.1: delete 15 jobs of the dead set (every match, queue=a)"
    ]


async def test_queue_and_process_actions_are_logged(
    web: Web, caplog: pytest.LogCaptureFixture
) -> None:
    for i in range(3):
        await web.push(f"job-{i:06d}")
    caplog.set_level(logging.INFO, logger=AUDIT)
    await web.post("/queues/default", {"action": "pause"})
    await web.post("/queues/default", {"action": "resume"})
    await web.post("/queues/default", {"action": "delete_jobs", "jid": ["job-000000"]})
    await web.post("/queues/default", {"action": "clear"})
    await web.post("/busy", {"wid": "all", "signal": "quiet"})
    prefix = "web UI action from 127.0.0.1: "
    assert audit_lines(caplog) == [
        prefix + "pause queue default",
        prefix + "resume queue default",
        prefix + "delete 1 job from queue default",
        prefix + "clear queue default (2 jobs)",
        prefix + "quiet every process (0 told)",
    ]


async def test_looking_at_pages_logs_nothing(web: Web, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT)
    for path in ("/", "/queues", "/dead", "/busy"):
        assert (await web.client.get(path)).status_code == 200
    assert audit_lines(caplog) == []
