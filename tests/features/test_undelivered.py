"""A job reserved for a FETCH whose client has gone is handed back at once, on SQLite,
Redis and PostgreSQL: it runs again soon, never waits reserved for nobody until the reaper
fails it as ``ReservationExpired`` (and, with ``retry`` 0, discards it unrun).
"""

from __future__ import annotations

import json

from tests.features.conftest import Clock
from werk.manager import Manager
from werk.manager.manager import UNDELIVERED
from werk.storage.base import Store


async def test_a_job_reserved_after_its_client_left_is_handed_back(store: Store) -> None:
    # Given a job that may not be retried, and a FETCH whose client is gone by the time the
    # store has reserved the job (the store answered late: cut, frozen or restarting)
    clock = Clock(1_800_000_000.0)
    manager = Manager(store, clock=clock)
    await manager.push({"jid": "job-orphan01", "jobtype": "T", "args": [], "retry": 0})

    # When the FETCH completes
    got = await manager.fetch(["default"], "w1", timeout=0, alive=lambda: False)

    # Then nothing is handed to the gone client, nothing stays reserved, and the job is due
    # to run again now, without using a retry
    assert got is None
    assert await store.working_size() == 0
    assert await manager.move_due("scheduled") == 1
    body = await manager.fetch(["default"], "w2", timeout=0)
    assert body is not None
    job = json.loads(body)
    assert job["jid"] == "job-orphan01"
    assert job["handed_back"]["count"] == 1
    assert job["handed_back"]["message"] == UNDELIVERED
    assert "failure" not in job


async def test_a_client_still_there_gets_its_job(store: Store) -> None:
    clock = Clock(1_800_000_000.0)
    manager = Manager(store, clock=clock)
    await manager.push({"jid": "job-kept0001", "jobtype": "T", "args": []})
    body = await manager.fetch(["default"], "w1", timeout=0, alive=lambda: True)
    assert body is not None and json.loads(body)["jid"] == "job-kept0001"
    assert await store.working_size() == 1
