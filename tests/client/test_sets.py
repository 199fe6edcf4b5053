"""Client and AsyncClient read the retry, scheduled and dead sets (Werk's JOBS) and act on
what they listed through MUTATE, against a real ``werk server`` on each backend."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.helpers import ServerProcess
from werk.client import AsyncClient, Client, CommandError, Job, SetEntry
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
