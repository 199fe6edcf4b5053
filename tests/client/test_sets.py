"""Client and AsyncClient read the retry, scheduled and dead sets (Werk's JOBS) and act on
what they listed through MUTATE, and list the jobs a real worker is running, against a
real ``werk server`` on each backend."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from tests.client.conftest import async_wait_until
from tests.helpers import ServerProcess
from werk.client import AsyncClient, Client, CommandError, Job, ProcessInfo, SetEntry, Worker
from werk.client.sets import MAX_MUTATE_JIDS, mutate_calls


@pytest.fixture
def client(flushed_server: ServerProcess) -> Iterator[Client]:
    with Client(flushed_server.url) as c:
        yield c


def fail(client: Client, job: Job, *, dead: bool = False) -> str:
    jid = client.push(job)
    fetched = client.fetch(job.queue or "default")
    assert fetched is not None and fetched["jid"] == jid
    client.fail(jid, "ValueError", f"bad {job.args}", dead=dead)
    return jid


def test_read_a_set_page_by_page_then_act_on_the_listed_jobs(client: Client) -> None:
    # Given five scheduled jobs, three failed ones in the retry set and one dead
    later = [client.push(Job("Report", [n], at=time.time() + 3600 + n)) for n in range(5)]
    mail = [fail(client, Job("SendEmail", [n], queue="mail", retry=5)) for n in range(2)]
    other = fail(client, Job("Resize", ["a.png"], queue="img", retry=5))
    dead = fail(client, Job("SendEmail", ["x"], queue="mail"), dead=True)
    # When the scheduled set is read a page at a time: due soonest first, every entry once
    page = client.jobs("scheduled", limit=2)
    assert page.jids == later[:2] and page.total == 5 and page.next_offset == 2
    assert isinstance(page.entries[0], SetEntry) and page.entries[0].args == [0]
    assert page.entries[0].at.tzinfo is UTC and page.entries[0].at > datetime.now(UTC)
    assert [entry.jid for entry in client.iter_jobs("scheduled", page_size=2)] == later
    # The retry set, filtered by jobtype: each entry carries its failure
    mails = list(client.iter_jobs("retries", jobtype="SendEmail"))
    assert sorted(entry.jid for entry in mails) == sorted(mail)
    assert {entry.failure["errtype"] for entry in mails if entry.failure} == {"ValueError"}
    assert mails[0].queue == "mail" and mails[0].jobtype == "SendEmail"
    assert client.find_job("dead", dead) is not None
    assert client.find_job("dead", other) is None
    # Then acting on the listed entries: kill moves them to the dead set, requeue back to
    # their queue, discard deletes; the job not listed stays where it was
    client.kill_jobs("retries", mails)
    assert sorted(client.jobs("dead").jids) == sorted([*mail, dead])
    assert client.jobs("retries").jids == [other]
    client.requeue_jobs("dead", [dead])
    assert client.info()["faktory"]["queues"]["mail"] == 1
    client.discard_jobs("scheduled", client.jobs("scheduled", regexp="*Report*[[]3]*").entries)
    assert (
        len(client.jobs("scheduled").entries) == 4 and later[3] not in client.jobs("scheduled").jids
    )
    waiting = client.jobs("queue", queue="mail")
    assert waiting.jids == [dead] and waiting.entries[0].target == "queue"


def test_mistakes_are_refused(client: Client) -> None:
    jid = fail(client, Job("Resize", ["b.png"], retry=5))
    entry = client.find_job("retries", jid)
    assert entry is not None
    with pytest.raises(ValueError, match="listed from retries, not dead"):
        client.requeue_jobs("dead", [entry])
    with pytest.raises(ValueError, match="not 'queue'"):
        client.discard_jobs("queue", [jid])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not one string"):
        client.jobs("retries", jids=jid)
    with pytest.raises(CommandError, match="limit must be a whole number from 1 to 1000"):
        client.jobs("retries", limit=0)
    with pytest.raises(CommandError, match="target must be one of"):
        client.jobs("morgue")  # type: ignore[arg-type]
    assert client.jobs("retries", jids=[]).entries == []  # names no job
    assert client.jobs("retries").jids == [jid]


def test_mutate_calls_split_long_jid_lists() -> None:
    jids = [f"jid-{n:08d}" for n in range(MAX_MUTATE_JIDS + 1)]
    calls = mutate_calls("kill", "dead", jids)
    assert len(calls) == 2 and calls[1].data.count(b"jid-") == 1
    assert mutate_calls("kill", "dead", []) == []


async def test_async_client(flushed_server: ServerProcess) -> None:
    async with AsyncClient(flushed_server.url) as client:
        jids = [await client.push(Job("Report", [n], at=time.time() + 60 + n)) for n in range(3)]
        page = await client.jobs("scheduled", limit=2)
        assert page.jids == jids[:2] and page.next_offset == 2
        assert [entry.jid async for entry in client.iter_jobs("scheduled", page_size=2)] == jids
        found = await client.find_job("scheduled", jids[1])
        assert found is not None and found.args == [1]
        await client.kill_jobs("scheduled", [found])
        assert (await client.jobs("dead")).jids == [jids[1]]
        await client.requeue_jobs("scheduled", jids)
        await client.discard_jobs("dead", [jids[1]])
        info = (await client.info())["faktory"]
        assert info["queues"]["default"] == 2 and info["sets"]["dead"] == 0


async def test_list_the_jobs_a_worker_is_running(
    flushed_server: ServerProcess, start_worker: Callable[[Worker], asyncio.Task[None]]
) -> None:
    # Given a worker running two jobs that block until the test lets them finish, and a
    # third job waiting in its queue
    url = flushed_server.url
    gate = threading.Event()
    started: list[int] = []
    worker = Worker(url, queues=["mail", "default"], concurrency=2, shutdown_timeout=5)

    @worker.register("Crunch")
    def crunch(n: int) -> None:
        started.append(n)
        gate.wait(30)

    async with AsyncClient(url) as client:
        mail = await client.push(Job("Crunch", [0], queue="mail", reserve_for=600))
        other = await client.push(Job("Crunch", [1], reserve_for=900))
        start_worker(worker)
        await async_wait_until(lambda: len(started) == 2)
        waiting = await client.push(Job("Crunch", [2]))
        # When the working set is listed: soonest expiry first, with the reservation
        page = await client.jobs("working")
        assert page.jids == [mail, other] and page.total == 2 and page.next_offset is None
        first = page.entries[0]
        assert first.target == "working" and first.wid == worker.wid
        assert first.reserved_at is not None and first.expires_at is not None
        assert first.reserved_at.tzinfo is UTC and first.at == first.reserved_at
        assert 599 <= (first.expires_at - first.reserved_at).total_seconds() <= 601
        assert first.args == [0] and first.queue == "mail" and first.jobtype == "Crunch"
        assert "enqueued_at" in first.job
        # Filtered and paged as the sets are, on both clients
        assert (await client.jobs("working", queue="mail")).jids == [mail]
        assert (await client.jobs("working", jids=[other, waiting])).jids == [other]
        assert (await client.jobs("working", jobtype="Other")).jids == []
        listed = [entry.jid async for entry in client.iter_jobs("working", page_size=1)]
        assert listed == [mail, other]
        # The worker process itself, with its two jobs (Sidekiq's ProcessSet)
        mine = {process.wid: process for process in await client.processes()}[worker.wid]
        assert isinstance(mine, ProcessInfo) and mine.busy == 2 and not mine.busy_capped
        assert (mine.pid, mine.hostname, mine.state) == (os.getpid(), socket.gethostname(), "")
        assert not mine.quiet and not mine.stopping and mine.connections >= 1
        assert mine.started_at.tzinfo is UTC and mine.started_at <= mine.last_beat
        with Client(url) as sync:
            listed_processes = await asyncio.to_thread(sync.processes)
            assert [p.busy for p in listed_processes if p.wid == worker.wid] == [2]
            found = await asyncio.to_thread(lambda: list(sync.iter_jobs("working", page_size=1)))
            assert [entry.jid for entry in found] == [mail, other]
            assert all(entry.wid == worker.wid for entry in found)
            # Running jobs are read only: MUTATE has no working target
            with pytest.raises(ValueError, match="not 'working'"):
                sync.requeue_jobs("working", found)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="listed from working, not dead"):
                sync.kill_jobs("dead", found)
            with pytest.raises(CommandError, match="JOBS queue must be a queue name"):
                sync.jobs("working", queue="no spaces")
        # Then a job the worker acknowledged is gone; the waiting one runs and shows
        gate.set()

        async def running() -> list[str]:
            return (await client.jobs("working")).jids

        deadline = time.monotonic() + 15
        while (len(started) < 3 or await running()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert await running() == [] and len(started) == 3
        mine = {process.wid: process for process in await client.processes()}[worker.wid]
        assert mine.busy == 0
