"""Client and AsyncClient against a real ``werk server``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import timedelta

import pytest

from tests.client.conftest import retries_size, wait_until
from tests.conftest import SQLITE_ONLY
from tests.helpers import ServerProcess, free_port
from werk.client import (
    AsyncClient,
    AuthenticationError,
    Client,
    CommandError,
    Job,
    ServerUnreachableError,
    WerkError,
    task,
)
from werk.client.sets import SetEntry, SetName


def test_push_fetch_ack(client: Client) -> None:
    jid = client.push(Job("Add", [1, 2], queue="math"))
    assert client.info()["faktory"]["queues"]["math"] == 1
    job = client.fetch("math")
    assert job is not None and job["jid"] == jid and job["args"] == [1, 2]
    client.ack(jid)
    info = client.info()["faktory"]
    assert info["queues"].get("math", 0) == 0 and info["total_processed"] >= 1


def test_fail_lands_in_retries_at_once(client: Client) -> None:
    jid = client.push(Job("Boom", retry=3))
    job = client.fetch()
    assert job is not None
    client.fail(jid, "RuntimeError", "boom", ["a.py:1:in `f'"])
    assert retries_size(client) == 1


def test_push_bulk_reports_refused_jobs(client: Client) -> None:
    errors = client.push_bulk([Job("A"), {"jid": "short", "jobtype": "B", "args": []}])
    assert list(errors) == ["short"] and "jid" in errors["short"]
    with pytest.raises(CommandError):
        client.push({"jid": "abcdefghij", "jobtype": "", "args": []})


def test_queue_admin(client: Client) -> None:
    client.push(Job("A", queue="paused"))
    client.pause_queues("paused")
    assert client.fetch("paused") is None
    client.resume_queues("paused")
    assert client.queue_latency("paused")["paused"] >= 0
    assert client.fetch("paused") is not None
    client.push(Job("A", queue="gone"))
    client.remove_queues("gone")
    assert client.info()["faktory"]["queues"].get("gone", 0) == 0


LIST_CALLS: list[tuple[str, tuple[object, ...]]] = [
    ("fetch", (["q"],)),
    ("pause_queues", (["q"],)),
    ("resume_queues", (["q"],)),
    ("remove_queues", (["q"],)),
    ("queue_latency", (["q"],)),
    ("delete_queued", ("q", ["jid1"])),
]


@pytest.mark.parametrize(("method", "args"), LIST_CALLS, ids=[m for m, _ in LIST_CALLS])
def test_a_list_where_names_go_is_a_clear_type_error(
    client: Client, method: str, args: tuple[object, ...]
) -> None:
    # Given the list shape Worker(queues=[...]) takes, passed to a *names method
    with pytest.raises(TypeError) as raised:
        getattr(client, method)(*args)
    # Then the error says how to call it, and the connection still works
    lead, noun = ("queue, ", "jids") if method == "delete_queued" else ("", "names")
    assert str(raised.value) == (
        f"{method}() takes {noun} as separate str arguments: {method}({lead}'a', 'b'),"
        f" or {method}({lead}*{noun}) for a list; got a list: {args[-1]!r}"
    )
    assert client.info()["faktory"]["queues"] == {}


@pytest.mark.parametrize(("method", "args"), LIST_CALLS, ids=[m for m, _ in LIST_CALLS])
async def test_a_list_where_names_go_is_a_clear_type_error_async(
    werk_server: ServerProcess, method: str, args: tuple[object, ...]
) -> None:
    async with AsyncClient(werk_server.url) as client:
        with pytest.raises(TypeError, match=r"takes (names|jids) as separate str arguments"):
            await getattr(client, method)(*args)
        assert (await client.info())["faktory"]["queues"] == {}


def test_delete_queued_deletes_a_waiting_job_and_leaves_a_running_one(client: Client) -> None:
    # Given two jobs in "mail", one of them already fetched by a worker, and one scheduled
    waiting = client.push(Job("Send", [1], queue="mail"))
    running = client.push(Job("Send", [2], queue="mail"))
    later = client.push(Job("Send", [3], queue="mail", at=time.time() + 3600))
    job = client.fetch("mail")
    assert job is not None and job["jid"] == waiting
    # When the client deletes all three from the queue
    deleted = client.delete_queued("mail", waiting, running, later)
    # Then only the one still waiting went; the running one still ACKs, the scheduled stays
    assert deleted == 1
    assert client.fetch("mail") is None
    client.ack(waiting)
    info = client.info()["faktory"]
    assert info["sets"]["scheduled"] == 1 and info["sets"]["working"] == 0
    assert client.delete_queued("mail", running) == 0  # gone: nothing to delete
    with pytest.raises(CommandError, match="needs a queue"):
        client.delete_queued("no such queue", running)
    with pytest.raises(ValueError, match="at least one jid"):
        client.delete_queued("mail")


def test_pushed_delete(client: Client) -> None:
    @task(queue="reports", client=client)
    def build(name: str) -> None: ...

    pushed = build.push("q3")
    assert pushed.delete() is True
    assert pushed.delete() is False
    assert client.info()["faktory"]["queues"].get("reports", 0) == 0
    # a job pushed for later waits in the scheduled set: delete() finds it there
    later = build.push_in(timedelta(hours=1), "q4")
    kept = build.push_in(timedelta(hours=1), "q5")
    assert later.delete() is True
    assert later.delete() is False
    assert [entry.jid for entry in client.iter_jobs("scheduled")] == [kept.jid]
    # a job a worker fetched runs on, and one waiting for a retry has run: both stay
    running = build.push("q6")
    assert (job := client.fetch("reports")) is not None and job["jid"] == running.jid
    assert running.delete() is False
    retrying = build.with_options(retry=3).push("q7")
    assert client.fetch("reports") is not None
    client.fail(retrying.jid, "E", "failed once")
    assert retrying.delete() is False
    sets = client.info()["faktory"]["sets"]
    assert (sets["working"], sets["retries"], sets["scheduled"]) == (1, 1, 1)


class ComesDue(Client):
    """A client whose scheduled job comes due between its look at the job and its discard
    (the race :meth:`Client.delete_unrun` closes), and is fetched there if ``fetch``."""

    fetch_it = False

    def discard_jobs(self, target: SetName, jobs: Iterable[SetEntry | str]) -> None:
        jobs = list(jobs)
        wait_until(lambda: self.info()["faktory"]["queues"].get("reports", 0) == 1)
        if self.fetch_it:
            assert self.fetch("reports") is not None
        super().discard_jobs(target, jobs)


@SQLITE_ONLY
@pytest.mark.parametrize(("fetch_it", "deleted"), [(False, True), (True, False)])
def test_a_scheduled_job_that_comes_due_while_deleted(
    werk_server: ServerProcess, fetch_it: bool, deleted: bool
) -> None:
    # Given a job due in half a second, which comes due as delete() looks for it
    with ComesDue(werk_server.url) as client:
        client.fetch_it = fetch_it
        jid = client.push(Job("Build", queue="reports", at=time.time() + 0.5))
        # When it is deleted: it is found in its queue, unless a worker fetched it first
        assert client.delete_unrun("reports", jid) is deleted
        sets, queues = client.info()["faktory"]["sets"], client.info()["faktory"]["queues"]
        assert (sets["scheduled"], sets["working"], queues.get("reports", 0)) == (
            0,
            int(fetch_it),
            0,
        )


def test_client_survives_a_server_restart(werk_server: ServerProcess, client: Client) -> None:
    client.push(Job("A"))
    werk_server.kill()
    werk_server.start()
    client.push(Job("B"))  # the stale pooled connection is replaced transparently
    assert client.info()["faktory"]["queues"]["default"] == 2


def test_password_ok_and_wrong(werk_server_factory: Callable[..., ServerProcess]) -> None:
    server = werk_server_factory(password="s3cret")
    with Client(server.url) as client:
        assert client.info()["server"]
    # every message names the server, as `werk worker`'s line does
    address = f"{server.host}:{server.port}"
    with pytest.raises(AuthenticationError) as wrong:
        Client(f"tcp://:wrong@{address}").info()
    assert str(wrong.value) == (
        f"the server tcp://:***@{address} refused the password: Invalid password"
    )
    with pytest.raises(AuthenticationError) as missing:
        Client(f"tcp://{address}").info()
    assert str(missing.value) == (
        f"the server tcp://{address} requires a password and none was given"
    )
    # the password in the user name's place: the message shows where it goes
    with pytest.raises(AuthenticationError) as misplaced:
        Client(f"tcp://s3cret@{address}").info()
    assert "s3cret" not in str(misplaced.value)
    assert str(misplaced.value) == (
        f"the server tcp://{address} requires a password and none was given (the URL has a"
        " user name and no password: the password goes after a colon, as in"
        " tcp://:secret@host:port)"
    )


async def test_async_client(werk_server: ServerProcess) -> None:
    async with AsyncClient(werk_server.url) as client:
        jid = await client.push(Job("A", [1]))
        assert (await client.push_bulk([Job("B"), Job("C")])) == {}
        job = await client.fetch("default")
        assert job is not None and job["jid"] == jid
        await client.ack(jid)
        job = await client.fetch("default")
        assert job is not None
        await client.fail(job["jid"], "E", "m")
        assert (await client.info())["faktory"]["tasks"]["Retries"]["size"] == 1
        kept = await client.push(Job("D", queue="other"))
        dropped = await client.push(Job("E", queue="other"))
        assert await client.delete_queued("other", dropped, "not-there") == 1
        later = await client.push(Job("F", queue="other", at=time.time() + 3600))
        assert await client.delete_unrun("other", later) is True
        assert await client.delete_unrun("other", later) is False
        assert (await client.info())["faktory"]["sets"]["scheduled"] == 0
        job = await client.fetch("other")
        assert job is not None and job["jid"] == kept


async def test_async_password(werk_server_factory: Callable[..., ServerProcess]) -> None:
    server = werk_server_factory(password="s3cret")
    async with AsyncClient(server.url) as client:
        await client.flush()
    with pytest.raises(AuthenticationError) as wrong:
        await AsyncClient(f"tcp://:bad@{server.host}:{server.port}").info()
    assert str(wrong.value) == (  # naming the server, as the blocking client does
        f"the server tcp://:***@{server.host}:{server.port} refused the password: Invalid password"
    )


@SQLITE_ONLY
@pytest.mark.parametrize("args", ["ann@example.com", {"to": "ann"}, 3, b"raw"])
def test_job_args_must_be_a_list_or_tuple(client: Client, args: object) -> None:
    with pytest.raises(TypeError, match="list or a tuple"):
        Job("SendEmail", args)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="list or a tuple"):
        client.push({"jobtype": "SendEmail", "args": args})
    assert client.info()["faktory"]["queues"].get("default", 0) == 0


def test_batch_callbacks_accept_job_objects(client: Client) -> None:
    success = Job("Done", ["ok"], queue="cb")
    bid = client.batch_new({"success": success, "complete": Job("All", queue="cb")})
    client.push(Job("Work", queue="work", custom={"bid": bid}))
    client.batch_commit(bid)
    work = client.fetch("work")
    assert work is not None
    client.ack(work["jid"])
    fired = []
    while (callback := client.fetch("cb")) is not None:
        fired.append(callback["jobtype"])
        client.ack(callback["jid"])
    assert sorted(fired) == ["All", "Done"]


def test_job_timeout_travels_in_custom(client: Client) -> None:
    jid = client.push(Job("Slow", custom={"track": 1}, timeout=2.5))
    job = client.fetch()
    assert job is not None and job["jid"] == jid
    assert job["custom"] == {"track": 1, "timeout": 2.5}


def test_no_server_raises_server_unreachable_naming_the_address() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(ServerUnreachableError) as caught:
        Client(f"tcp://:s3cret@127.0.0.1:{port}", connect_retries=2).push(Job("A"))
    error = caught.value
    assert isinstance(error, ConnectionError) and isinstance(error, WerkError)
    assert f"tcp://:***@127.0.0.1:{port}" in str(error) and "s3cret" not in str(error)
    assert "3 attempts" in str(error) and error.attempts == 3
    assert isinstance(error.__cause__, ConnectionRefusedError)


async def test_async_no_server_raises_server_unreachable() -> None:
    port = free_port()
    with pytest.raises(ServerUnreachableError, match=f"127.0.0.1:{port}"):
        await AsyncClient(f"tcp://127.0.0.1:{port}", connect_retries=0).info()
