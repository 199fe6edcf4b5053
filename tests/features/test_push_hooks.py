"""Which push hooks a job meets: a job without ``custom`` skips the middleware that reads
only ``custom`` (``Middleware.reads_custom_only``), as most jobs carry none."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.storage.conftest import backend_data
from werk.errors import StorageError
from werk.job import check
from werk.manager import Manager
from werk.manager.features import default_middleware
from werk.manager.middleware import Middleware

NOW = 1_700_000_000.0


class Heard(Middleware):
    """Records the jids its push and storing hooks were called with."""

    def __init__(self, custom_only: bool) -> None:
        self.reads_custom_only = custom_only
        self.heard: list[tuple[str, str]] = []

    async def push(self, job: dict[str, Any], now: float) -> None:
        self.heard.append(("push", job["jid"]))

    async def storing(self, jobs: Sequence[dict[str, Any]], now: float) -> None:
        self.heard.extend(("storing", job["jid"]) for job in jobs)


def plain(jid: str, **fields: Any) -> dict[str, Any]:
    return {"jid": jid, "jobtype": "T", "args": [], **fields}


async def test_a_job_without_custom_skips_the_custom_only_hooks(tmp_path: Path) -> None:
    async with backend_data("sqlite", tmp_path) as data:
        store = await data.open()
        every, custom_only = Heard(custom_only=False), Heard(custom_only=True)
        manager = Manager(store, clock=lambda: NOW, middleware=[every, custom_only])
        await manager.push(plain("plain-one"))
        await manager.push(plain("empty-custom", custom={}))
        await manager.push(plain("with-custom", custom={"x": 1}))
        await manager.push_bulk([plain("bulk-plain-1"), plain("bulk-plain-2")])
        await manager.push_bulk([plain("bulk-plain"), plain("bulk-custom", custom={"y": 2})])
        await store.close()
    jids = ["plain-one", "empty-custom", "with-custom", "bulk-plain-1", "bulk-plain-2"]
    jids += ["bulk-plain", "bulk-custom"]
    assert {jid for _, jid in every.heard} == set(jids)
    assert len(every.heard) == 2 * len(jids)
    # A PUSHB's storing hook hears all its jobs when one of them has custom.
    assert sorted(custom_only.heard) == sorted(
        [("push", "with-custom"), ("push", "bulk-custom")]
        + [("storing", jid) for jid in ("with-custom", "bulk-plain", "bulk-custom")]
    )


async def test_the_built_in_custom_only_hooks_do_nothing_to_a_plain_job(tmp_path: Path) -> None:
    """Each built-in middleware that says so leaves a job without ``custom`` as it is and
    never reaches its store for it (the store is closed: any call would fail)."""
    async with backend_data("sqlite", tmp_path) as data:
        store = await data.open()
        chain = default_middleware(store, {})
        await store.close()
    flagged = [m for m in chain if m.reads_custom_only]
    assert len(flagged) == 6  # expiry, chains, unique, batches, tracking, results
    for job in (plain("plain-one"), plain("empty-custom", custom={})):
        validated, _ = check(job, NOW)
        before = copy.deepcopy(validated)
        for middleware in flagged:
            await middleware.push(validated, NOW)
            await middleware.storing([validated], NOW)
        assert validated == before
    with pytest.raises(StorageError):  # the closed store would have told
        await store.enqueue([], NOW)
