"""Job results from the Python client: Client.result and job_state, AsyncClient.result, and
a Worker that sends its functions' return values (SQLite and Redis servers)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable

import pytest

from tests.client.conftest import async_wait_until
from tests.conftest import SQLITE_ONLY
from tests.helpers import ServerProcess
from werk.client import (
    AsyncClient,
    Client,
    Job,
    JobFailedError,
    ResultTimeoutError,
    UnknownJobError,
    Worker,
    task,
)
from werk.client.limits import RateLimited
from werk.client.processor import RESULT_TOO_LARGE_ERRTYPE
from werk.client.results import RESULT_NOT_JSON_ERRTYPE

Start = Callable[[Worker], asyncio.Task[None]]


def make_worker(server: ServerProcess) -> Worker:
    worker = Worker(server.url, concurrency=2, shutdown_timeout=5)

    @worker.register("Add")
    def add(a: int, b: int) -> dict[str, int]:
        return {"sum": a + b}

    @worker.register("AsyncUpper")
    async def upper(text: str) -> str:
        await asyncio.sleep(0)
        return text.upper()

    @worker.register("Broken")
    def broken() -> None:
        raise ValueError("no good")

    @worker.register("Opaque")
    def opaque() -> object:
        return object()

    @worker.register("Huge")
    def huge() -> str:
        return "x" * (2 * 1024 * 1024)

    return worker


async def test_worker_return_values_reach_the_client(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    start_worker(make_worker(werk_server))
    add = client.push(Job("Add", [2, 3], result_ttl=60))
    upper = client.push(Job("AsyncUpper", ["werk"], result_ttl=60))
    plain = client.push(Job("Add", [1, 1]))  # no result_ttl: nothing kept
    assert await asyncio.to_thread(client.result, add, 20) == {"sum": 5}
    async with AsyncClient(werk_server.url) as aclient:
        assert await aclient.result(upper, timeout=20) == "WERK"
        state = await aclient.job_state(add)
    assert state.state == "succeeded" and state.result == {"sum": 5}
    assert state.jobtype == "Add" and state.finished_at is not None
    assert state.args == [2, 3] and state.custom == {"result_ttl": 60} and state.wid
    began = time.monotonic()
    with pytest.raises(UnknownJobError, match="kept only for jobs pushed with result_ttl"):
        await asyncio.to_thread(client.result, plain, 20)
    assert time.monotonic() - began < 10  # at once, not after the 20 s wait

    @task(client=client, queue="nobody")
    def forgetful() -> int:
        return 1

    with pytest.raises(UnknownJobError, match=r"@task\(result_ttl=seconds\)"):
        await asyncio.to_thread(forgetful.push().result, 20)


async def test_failures_raise_with_the_last_error(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    start_worker(make_worker(werk_server))
    broken = client.push(Job("Broken", retry=0, result_ttl=60))
    opaque = client.push(Job("Opaque", retry=0, result_ttl=60))
    huge = client.push(Job("Huge", retry=0, result_ttl=60))
    with pytest.raises(JobFailedError) as failed:
        await asyncio.to_thread(client.result, broken, 20)
    assert (failed.value.state, failed.value.errtype) == ("failed", "ValueError")
    assert failed.value.error_message == "no good" and failed.value.backtrace
    with pytest.raises(JobFailedError, match="cannot be stored as JSON"):
        await asyncio.to_thread(client.result, opaque, 20)
    with pytest.raises(JobFailedError) as too_large:
        await asyncio.to_thread(client.result, huge, 20)
    assert too_large.value.errtype == RESULT_TOO_LARGE_ERRTYPE
    assert "over the limit of 1048576 bytes" in too_large.value.error_message


def test_a_wait_that_runs_out(client: Client) -> None:
    jid = client.push(Job("Nobody", queue="idle", result_ttl=60))
    assert client.job_state(jid).state == "queued"
    with pytest.raises(ResultTimeoutError, match="is still queued"):
        client.result(jid, timeout=0.3)
    fetched = client.fetch("idle")
    assert fetched is not None
    client.ack(jid, result=[1, "two"])
    assert client.result(jid, timeout=1) == [1, "two"]


async def test_a_task_handle_waits_for_its_result(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    @task(result_ttl=60, client=client)
    def multiply(a: int, b: int) -> int:
        return a * b

    worker = Worker(werk_server.url, concurrency=1, shutdown_timeout=5)
    worker.include(multiply)
    start_worker(worker)
    pushed = multiply.push(6, b=7)
    assert await asyncio.to_thread(pushed.result, 20) == 42
    assert pushed.state().state == "succeeded"


@SQLITE_ONLY
async def test_a_job_is_logged_once_done_or_once_failed(
    werk_server: ServerProcess,
    client: Client,
    start_worker: Start,
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = make_worker(werk_server)

    @worker.register("Limited")
    def limited() -> None:
        raise RateLimited("retry after 60")

    caplog.set_level(logging.INFO, logger="werk.worker")
    start_worker(worker)
    ok = client.push(Job("Add", [1, 2], result_ttl=60))
    opaque = client.push(Job("Opaque", retry=0, result_ttl=60))
    huge = client.push(Job("Huge", retry=0, result_ttl=60))
    throttled = client.push(Job("Limited", retry=0))
    assert await asyncio.to_thread(client.result, ok, 20) == {"sum": 3}
    for jid in (opaque, huge):
        with pytest.raises(JobFailedError):
            await asyncio.to_thread(client.result, jid, 20)
    await async_wait_until(lambda: any(throttled in r.getMessage() for r in caplog.records))

    def lines(jid: str) -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage().startswith(f"job {jid} ")]

    assert [r.getMessage().split(": ")[1][:7] for r in lines(ok)] == ["done in"]
    for jid, errtype in ((opaque, RESULT_NOT_JSON_ERRTYPE), (huge, RESULT_TOO_LARGE_ERRTYPE)):
        (line,) = lines(jid)
        assert "done" not in line.getMessage() and "failed after" in line.getMessage()
        assert errtype in line.getMessage()
    (line,) = lines(throttled)
    assert line.levelno == logging.INFO and line.exc_info is None
    assert "rate limited after" in line.getMessage() and "retry after 60" in line.getMessage()


async def held_fetch_server(job: dict[str, object]) -> tuple[asyncio.Server, list[bytes]]:
    """A Faktory-speaking server that hands out ``job`` once, records every ACK, and
    never answers a later FETCH (a real server answers it when a job comes, or after
    ~2 s): what a worker does meanwhile cannot depend on that answer."""
    acks: list[bytes] = []
    handed = False

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal handed
        writer.write(b'+HI {"v":2}\r\n')
        while line := await reader.readline():
            verb = line.split(b" ", 1)[0].strip()
            if verb == b"END":
                break
            if verb == b"FETCH":
                if not handed:
                    handed = True
                    body = json.dumps(job).encode()
                    writer.write(b"$%d\r\n%s\r\n" % (len(body), body))
                continue  # held: no reply
            if verb == b"ACK":
                acks.append(line)
            writer.write(b"+OK\r\n")
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0), acks


async def test_a_result_jobs_done_line_does_not_wait_for_the_next_fetch(
    start_worker: Start, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a job that returns a value for its result, whose ACK the worker pipelines with
    # its next FETCH, when the server accepts the ACK and has no job for the FETCH, then
    # the "done" line is written at once (it used to wait for the FETCH's answer: up to
    # 2 s on a real server, or until the worker stopped).
    job = {"jid": "r1", "jobtype": "Add", "args": [1, 2], "custom": {"result_ttl": 60}}
    server, acks = await held_fetch_server(job)
    async with server:
        port = server.sockets[0].getsockname()[1]
        worker = Worker(f"tcp://127.0.0.1:{port}", concurrency=1, shutdown_timeout=1)
        worker.add("Add", lambda a, b: a + b)
        caplog.set_level(logging.INFO, logger="werk.worker")
        start_worker(worker)

        def done() -> list[str]:
            return [m for r in caplog.records if (m := r.getMessage()).startswith("job r1 ")]

        (line,) = await async_wait_until(done)
        assert line.startswith("job r1 Add: done in ")
        assert len(acks) == 1 and b'"result":3' in acks[0]


def test_result_of_a_deleted_job_raises_at_once(client: Client) -> None:
    # Given a task's job that asks for a result, still waiting in its queue
    @task(client=client, queue="nobody", result_ttl=60)
    def never_run(x: int) -> int:
        return x

    pushed = never_run.push(1)
    # When it is deleted, its result() raises JobFailedError at once instead of waiting
    assert pushed.delete()
    began = time.monotonic()
    with pytest.raises(JobFailedError) as failed:
        pushed.result(20)
    assert time.monotonic() - began < 10
    assert (failed.value.state, failed.value.errtype) == ("failed", "Deleted")
    assert failed.value.error_message == "the job was deleted from queue nobody"


def test_result_of_a_removed_queue_or_a_killed_job_raises_at_once(client: Client) -> None:
    # Given a task's job waiting in its queue and one scheduled, both asking for a result
    @task(client=client, queue="nobody", result_ttl=60)
    def never_run(x: int) -> int:
        return x

    queued = never_run.push(1)
    later = client.push(Job("never_run", [2], queue="nobody", at=time.time() + 3600, result_ttl=60))
    # When the queue is removed and the scheduled job killed
    client.remove_queues("nobody")
    client.kill_jobs("scheduled", [later])
    # Then each result() raises JobFailedError at once instead of waiting
    began = time.monotonic()
    with pytest.raises(JobFailedError) as failed:
        queued.result(20)
    assert (failed.value.state, failed.value.errtype) == ("failed", "Deleted")
    assert failed.value.error_message == "the job was deleted from queue nobody"
    with pytest.raises(JobFailedError) as failed:
        client.result(later, 20)
    assert (failed.value.state, failed.value.errtype) == ("dead", "Killed")
    assert time.monotonic() - began < 10


def test_a_wait_and_a_push_outlast_a_server_restart(werk_server: ServerProcess) -> None:
    # The server is away for a few seconds while a result wait is under way and a push is
    # sent. The wait used to give up after the client's connect retries (~1.6 s, at 3.4 s
    # into a 25 s wait); it now keeps reconnecting within its timeout. The push rides out
    # the restart on its connect retries (8 by default, about 6 s).
    with Client(werk_server.url) as client:
        jid = client.push(Job("Add", [1, 2], result_ttl=60))
        waited: list[object] = []
        waiter = threading.Thread(
            target=lambda: waited.append(_outcome(lambda: client.result(jid, timeout=25)))
        )
        waiter.start()
        time.sleep(0.5)
        werk_server.stop()
        pushed: list[object] = []
        pusher = threading.Thread(
            target=lambda: pushed.append(_outcome(lambda: client.push(Job("Add", [3, 4]))))
        )
        pusher.start()
        time.sleep(2.5)
        werk_server.start()
        pusher.join(15)
        assert len(pushed) == 1 and isinstance(pushed[0], str), pushed
        job = client.fetch()
        assert job is not None and job["jid"] == jid
        client.ack(jid, {"sum": 3})
        waiter.join(15)
    assert waited == [{"sum": 3}]


def _outcome(call: Callable[[], object]) -> object:
    try:
        return call()
    except Exception as exc:  # the test asserts on it
        return exc
