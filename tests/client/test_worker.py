"""The Worker against a real ``werk server``: jobs, failures, signals, shutdown, restarts."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.client.conftest import async_wait_until, retries_size, wait_until
from tests.conftest import SQLITE_ONLY
from tests.helpers import Peer, ServerProcess
from werk.client import Client, Job, Middleware, NoRetry, RetryIn, Worker, task
from werk.protocol.resp import Simple

Start = Callable[[Worker], "asyncio.Task[None]"]


def retry_jobs(client: Client) -> list[dict[str, Any]]:
    """The jobs in the Retries set, requeued so they can be fetched and inspected (as many
    FETCHes as the set held, then INFO shows the queue empty: no last FETCH waiting ~2 s
    for nothing)."""
    count = retries_size(client)
    client.mutate("requeue", "retries", {})
    jobs = []
    for _ in range(count):
        job = client.fetch("default")
        assert job is not None
        jobs.append(job)
        client.ack(job["jid"])
    assert client.info()["faktory"]["queues"].get("default", 0) == 0
    return jobs


async def test_sync_and_async_jobs(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    worker = Worker(werk_server.url, concurrency=4, shutdown_timeout=5)
    done: list[tuple[str, int]] = []

    @worker.register("Sync")
    def sync_job(n: int) -> None:
        assert threading.current_thread() is not threading.main_thread()
        done.append(("sync", n))

    @worker.register("Async")
    async def async_job(n: int) -> None:
        await asyncio.sleep(0)
        done.append(("async", n))

    client.push_bulk([Job("Sync", [i]) for i in range(20)] + [Job("Async", [i]) for i in range(20)])
    start_worker(worker)
    await async_wait_until(lambda: len(done) == 40)
    await async_wait_until(lambda: client.info()["faktory"]["total_processed"] == 40)
    assert sorted(done) == sorted(
        [("sync", i) for i in range(20)] + [("async", i) for i in range(20)]
    )


async def test_failure_goes_to_retries_with_backtrace(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    worker = Worker(werk_server.url, concurrency=1)

    @worker.register
    def explode(depth: int) -> None:
        if depth:
            explode(depth - 1)
        raise ValueError("kaboom")

    client.push(Job("explode", [5], backtrace=3))
    task = start_worker(worker)
    await async_wait_until(lambda: retries_size(client) == 1)
    worker.stop()
    await task
    failure = (await asyncio.to_thread(retry_jobs, client))[0]["failure"]
    assert failure["errtype"] == "ValueError" and failure["message"] == "kaboom"
    assert len(failure["backtrace"]) == 3 and "explode" in failure["backtrace"][0]


async def test_a_job_decides_its_failure_no_retry_and_retry_in(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    worker = Worker(werk_server.url, concurrency=2)
    runs: list[str] = []

    @worker.register
    def parse(text: str) -> None:
        runs.append("parse")
        try:
            int(text)
        except ValueError as exc:
            raise NoRetry("not a number, retrying will not help") from exc

    @worker.register
    def poll() -> None:
        runs.append("poll")
        if runs.count("poll") == 1:
            raise RetryIn(0.2, "not ready yet")

    client.push(Job("parse", ["x"], retry=25))
    client.push(Job("poll", []))
    running = start_worker(worker)
    # NoRetry: dead at once, reported as the exception it came from; RetryIn: run again
    # within a second (Faktory's first backoff is 15 to 44 s)
    await async_wait_until(lambda: runs.count("poll") == 2, timeout=10)
    worker.stop()
    await running
    sets = client.info()["faktory"]["sets"]
    assert sets["dead"] == 1 and sets["retries"] == 0 and runs.count("parse") == 1
    client.mutate("requeue", "dead", {})
    job = client.fetch("default")
    assert job is not None and job["jobtype"] == "parse"
    assert job["failure"]["errtype"] == "ValueError"
    assert job["failure"]["message"] == "not a number, retrying will not help"


def test_retry_in_refuses_a_negative_delay_and_one_past_180_days() -> None:
    with pytest.raises(ValueError, match="seconds from 0"):
        RetryIn(-1)
    # 10**12 s used to be taken, then silently cut to 180 days by the server
    with pytest.raises(ValueError, match=r"from 0 to 15552000 \(180 days\), not 1000000000000"):
        RetryIn(10**12)
    assert RetryIn(180 * 86400).fail_fields == {"retry_in": 15552000}


async def test_a_retry_in_with_no_retry_left_says_the_job_failed_for_good(
    werk_server: ServerProcess,
    client: Client,
    start_worker: Start,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # "retry in 1s asked" at info used to be logged for a job then discarded (retry 0)
    worker = Worker(werk_server.url, concurrency=2)

    @worker.register
    def poll() -> None:
        raise RetryIn(1, "not ready yet")

    caplog.set_level(logging.INFO, logger="werk.worker")
    once = client.push(Job("poll", retry=0))
    again = client.push(Job("poll", retry=1))
    start_worker(worker)

    def lines(jid: str) -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage().startswith(f"job {jid} ")]

    await async_wait_until(lambda: lines(once) and lines(again), timeout=10)
    (line,) = lines(once)
    assert line.levelno == logging.WARNING, line.getMessage()
    assert "it asked for a retry in 1s but has no retry left (retry 0): discarded" in (
        line.getMessage()
    )
    first = lines(again)[0]
    assert first.levelno == logging.INFO and "retry in 1s asked" in first.getMessage()


class Counting(Middleware):
    def __init__(self) -> None:
        self.events: list[str] = []

    def on_start(self, worker: Worker) -> None:
        self.events.append("start")

    def before_job(self, job: dict[str, Any]) -> None:
        self.events.append("before " + job["jobtype"])

    def after_job(self, job: dict[str, Any], exc: BaseException | None) -> None:
        self.events.append(f"after {job['jobtype']} {exc!r}")

    def on_stop(self, worker: Worker) -> None:
        self.events.append("stop")


async def test_middleware_hooks(werk_server: ServerProcess, client: Client) -> None:
    middleware = Counting()
    worker = Worker(werk_server.url, concurrency=1, middleware=[middleware])
    worker.add("Noop", lambda: None)
    client.push(Job("Noop"))
    task = asyncio.create_task(worker.run_async())
    await async_wait_until(lambda: len(middleware.events) >= 3)
    worker.stop()
    await task
    assert middleware.events == ["start", "before Noop", "after Noop None", "stop"]


async def test_shutdown_waits_for_jobs_and_hands_back_the_rest(
    werk_server: ServerProcess, client: Client
) -> None:
    worker = Worker(werk_server.url, concurrency=3, shutdown_timeout=1.0)
    started: list[str] = []
    finished: list[str] = []
    release = asyncio.Event()  # quick ends once the stop has begun, however slow the machine
    gate = threading.Event()  # slow ends only when the test lets it (60 s at most)

    @worker.register
    async def quick() -> None:
        started.append("quick")
        await release.wait()
        finished.append("quick")

    @worker.register
    def slow(n: int) -> None:
        started.append("slow")
        gate.wait(60)
        finished.append("slow")

    client.push(Job("quick"))
    # retry 0 would discard a failed job and a negative retry send it to Dead: a job handed
    # back at a shutdown is neither, it runs again at once
    client.push(Job("slow", [0], retry=0))
    client.push(Job("slow", [-1], retry=-1))
    task = asyncio.create_task(worker.run_async())
    # running, not only fetched: a job fetched but not started when the stop begins is
    # handed back at once (on a loaded machine the FETCH can come well before the start)
    await async_wait_until(lambda: len(started) == 3)
    began = time.monotonic()
    worker.stop()
    release.set()
    await task
    # the worker waited for quick, then gave up on slow after its shutdown_timeout,
    # far sooner than slow's 60 s
    assert time.monotonic() - began < 30
    assert finished == ["quick"]
    gate.set()
    # back in their queue (the scheduler moves them there), no retry used, none lost
    jobs: list[dict[str, Any]] = []

    def fetched() -> bool:
        while (job := client.fetch("default")) is not None:
            jobs.append(job)
            client.ack(job["jid"])
        return len(jobs) == 2

    await asyncio.to_thread(wait_until, fetched)
    assert sorted(job["args"][0] for job in jobs) == [-1, 0]
    for job in jobs:
        assert "failure" not in job
        assert job["handed_back"]["count"] >= 1
    tasks = client.info()["faktory"]["tasks"]
    assert [tasks[name]["size"] for name in ("Busy", "Retries", "Dead")] == [0, 0, 0]


async def test_worker_reconnects_after_server_restart(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    worker = Worker(werk_server.url, concurrency=2, heartbeat_interval=0.3)
    done: list[int] = []

    @worker.register
    async def record(n: int) -> None:
        done.append(n)

    start_worker(worker)
    client.push(Job("record", [1]))
    await async_wait_until(lambda: done == [1])
    await asyncio.to_thread(werk_server.kill)
    await asyncio.to_thread(werk_server.start)
    await asyncio.to_thread(client.push, Job("record", [2]))
    await async_wait_until(lambda: done == [1, 2], timeout=30)


def beat_as(server: ServerProcess, wid: str, state: str | None = None) -> Any:
    """BEAT for ``wid`` on a raw connection of our own (announcing ``state``)."""
    peer = Peer(server.host, server.port)
    try:
        assert peer.hello(wid=wid) == Simple("OK")
        payload: dict[str, Any] = {"wid": wid}
        if state:
            payload["current_state"] = state
        return peer.call("BEAT " + json.dumps(payload))
    finally:
        peer.close()


async def test_a_stopped_worker_leaves_no_connection_open(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    # A worker stopped inside a process that goes on (run_async) closes its job slots'
    # connections and its heartbeat's: the server then counts only this test's client.
    before = client.info()["server"]["connections"]
    worker = Worker(werk_server.url, concurrency=3, heartbeat_interval=0.2)
    running = start_worker(worker)
    await async_wait_until(lambda: client.info()["server"]["connections"] == before + 4)
    worker.stop()
    await running
    # closed as it stopped (not when the garbage collector gets to the connection)
    await async_wait_until(lambda: client.info()["server"]["connections"] == before, timeout=5)


async def test_worker_announces_quiet_in_beat(
    werk_server: ServerProcess, start_worker: Start
) -> None:
    worker = Worker(werk_server.url, concurrency=1, heartbeat_interval=0.2)
    start_worker(worker)
    await asyncio.sleep(0.3)
    worker.quiet()
    reply = await async_wait_until(
        lambda: (r := beat_as(werk_server, worker.wid)) != Simple("OK") and r
    )
    assert json.loads(reply) == {"state": "quiet"}


async def test_quiet_then_terminate_from_the_server(
    werk_server: ServerProcess, client: Client
) -> None:
    """The server asks via its BEAT reply (the state was set through the same wid)."""
    worker = Worker(werk_server.url, concurrency=1, heartbeat_interval=0.2, shutdown_timeout=1)
    done: list[int] = []

    @worker.register
    async def record(n: int) -> None:
        done.append(n)

    task = asyncio.create_task(worker.run_async())
    client.push(Job("record", [1]))
    await async_wait_until(lambda: done == [1])
    await asyncio.to_thread(beat_as, werk_server, worker.wid, "quiet")
    await async_wait_until(lambda: worker.state == "quiet")
    await asyncio.sleep(2.5)  # let any FETCH already in flight come back empty
    client.push(Job("record", [2]))
    await asyncio.sleep(1.0)
    assert done == [1] and client.info()["faktory"]["queues"]["default"] == 1
    await asyncio.to_thread(beat_as, werk_server, worker.wid, "terminate")
    await asyncio.wait_for(task, 10)
    assert worker.state == "terminate"


@SQLITE_ONLY
async def test_the_start_line_shows_queues_and_warns_of_left_out_task_queues(
    werk_server: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    @task(queue="mail")
    def send_email(address: str) -> None: ...

    caplog.set_level(logging.INFO, logger="werk.worker")
    for n, queues in enumerate(
        (["default"], ["default,1", "mail,2"], None, ["critical", "default"]), start=1
    ):
        worker = Worker(werk_server.url, queues=queues, concurrency=1)
        worker.include(send_email)
        running = asyncio.create_task(worker.run_async())
        await async_wait_until(
            lambda n=n: sum("starting" in r.getMessage() for r in caplog.records) == n
        )
        worker.stop()
        await running
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    starts = [
        line.split("queues ")[1].split(", concurrency")[0] for line in lines if "starting" in line
    ]
    assert starts == [
        "default",
        "default (weight 1), mail (weight 2)",
        "default (weight 1), mail (weight 1)",
        "critical, default (in this order)",
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        warnings
        == [
            "queues mail of included tasks are not among this worker's queues: their jobs wait"
            " for a worker that fetches them"
        ]
        * 2
    )
