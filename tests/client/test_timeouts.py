"""Job timeouts against a real server: coroutines are cancelled, threads are interrupted."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest

from tests.client.conftest import async_wait_until, retries_size
from tests.client.test_worker import Start, retry_jobs
from tests.conftest import SQLITE_ONLY
from tests.helpers import ServerProcess
from werk.client import TIMEOUT_ERRTYPE, Client, Job, JobTimeoutError, Worker


async def failed_jobs(worker: Worker, task: asyncio.Task[None], client: Client) -> list[Any]:
    """Stop ``worker``; return the jobs it FAILed (read from the retry set, which it would
    otherwise fetch from as they are requeued)."""
    worker.stop()
    await task
    return await asyncio.to_thread(retry_jobs, client)


@SQLITE_ONLY
async def test_timed_out_coroutine_is_cancelled_and_failed(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    worker = Worker(werk_server.url, concurrency=2)
    events: list[str] = []

    @worker.register(timeout=0.5)
    async def crawl(url: str) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise
        events.append("finished")

    client.push(Job("crawl", ["https://example.com"]))
    began = time.monotonic()
    task = start_worker(worker)
    await async_wait_until(lambda: retries_size(client) == 1)
    assert time.monotonic() - began < 5
    assert events == ["cancelled"]
    (job,) = await failed_jobs(worker, task, client)
    assert TIMEOUT_ERRTYPE == "JobTimeout"
    assert job["failure"]["errtype"] == "JobTimeout"
    assert "timeout of 0.5s" in job["failure"]["message"]


@SQLITE_ONLY
async def test_job_timeout_overrides_the_jobtype_timeout(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    worker = Worker(werk_server.url, concurrency=2)
    done: list[float] = []

    @worker.register(timeout=0.2)
    async def nap(seconds: float) -> None:
        await asyncio.sleep(seconds)
        done.append(seconds)

    client.push(Job("nap", [0.6], timeout=5))  # longer than the jobtype's 0.2 s: allowed
    client.push(Job("nap", [0.6]))  # the jobtype's 0.2 s applies
    start_worker(worker)
    await async_wait_until(lambda: done == [0.6] and retries_size(client) == 1)
    await async_wait_until(lambda: client.info()["faktory"]["total_processed"] == 2)


@SQLITE_ONLY
async def test_timed_out_thread_in_a_call_gets_the_exception_when_it_returns(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    worker = Worker(werk_server.url, concurrency=1)
    running = 0
    most = 0
    events: list[str] = []
    lock = threading.Lock()

    @worker.register(timeout=0.3)
    def convert(name: str) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            time.sleep(3.0 if name == "big" else 0.01)  # a C call: not cut short
            events.append(f"{name} slept")
        except JobTimeoutError:
            events.append(f"{name} interrupted")
            raise
        finally:
            with lock:
                running -= 1

    client.push(Job("convert", ["big"]))
    client.push(Job("convert", ["small"]))
    task = start_worker(worker)
    # The FAIL goes out once the function had UNWIND_GRACE to unwind, long before the
    # sleep returns ...
    await async_wait_until(lambda: retries_size(client) == 1)
    assert events == []
    # ... the exception lands as the sleep returns, and the next job starts only once the
    # function unwound: one function at a time.
    await async_wait_until(lambda: events == ["big interrupted", "small slept"])
    assert most == 1
    await async_wait_until(lambda: client.info()["faktory"]["total_processed"] == 2)
    (job,) = await failed_jobs(worker, task, client)
    assert job["failure"]["errtype"] == "JobTimeout"
    assert job["failure"]["message"].startswith(
        "interrupted after its timeout of 0.3s, still running 1s later"
    )


@SQLITE_ONLY
async def test_busy_thread_is_interrupted_its_finally_runs_and_its_slot_frees(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    # Given a worker with one slot and a plain function stuck in a Python loop,
    worker = Worker(werk_server.url, concurrency=1)
    cleaned: list[int] = []
    after: list[str] = []

    @worker.register(timeout=0.5)
    def spin() -> None:
        x = 0
        try:
            while True:
                x += 1
        finally:
            cleaned.append(x)

    @worker.register
    def next_job() -> None:
        after.append("ran")

    client.push(Job("spin"))
    client.push(Job("next_job"))
    began = time.monotonic()
    task = start_worker(worker)
    # When its timeout passes, then it is interrupted: its finally ran, it is FAILed with
    # JobTimeout and the backtrace of its loop, and the slot runs the next job, ACKed.
    await async_wait_until(lambda: after == ["ran"])
    assert time.monotonic() - began < 5
    assert len(cleaned) == 1 and cleaned[0] > 0
    await async_wait_until(lambda: client.info()["faktory"]["total_processed"] == 2)
    assert client.info()["faktory"]["total_failures"] == 1
    (job,) = await failed_jobs(worker, task, client)
    assert job["jobtype"] == "spin"
    assert job["failure"]["errtype"] == "JobTimeout"
    assert job["failure"]["message"] == "interrupted after its timeout of 0.5s"
    assert job["failure"]["backtrace"][0].endswith(":in `spin'")


@SQLITE_ONLY
async def test_a_job_that_catches_the_timeout_is_still_reported_timed_out(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    worker = Worker(werk_server.url, concurrency=3)
    caught: list[str] = []

    def loop_until_interrupted(name: str) -> None:
        try:
            while True:
                pass
        except JobTimeoutError:
            caught.append(name)

    @worker.register(timeout=0.3)
    def reraises() -> None:
        try:
            loop_until_interrupted("reraises")
        finally:
            pass
        raise JobTimeoutError("cleaned up, giving up")

    @worker.register(timeout=0.3)
    def swallows() -> str:
        loop_until_interrupted("swallows")
        return "done anyway"

    @worker.register(timeout=0.3)
    def raises_another() -> None:
        loop_until_interrupted("raises_another")
        raise ValueError("cleanup failed")

    client.push_bulk([Job("reraises"), Job("swallows", result_ttl=60), Job("raises_another")])
    task = start_worker(worker)
    await async_wait_until(lambda: retries_size(client) == 3)
    failures = {job["jobtype"]: job["failure"] for job in await failed_jobs(worker, task, client)}
    assert sorted(caught) == ["raises_another", "reraises", "swallows"]
    assert client.info()["faktory"]["total_failures"] == 3
    assert {f["errtype"] for f in failures.values()} == {"JobTimeout"}
    assert failures["reraises"]["message"] == "interrupted after its timeout of 0.3s"
    assert failures["swallows"]["message"] == (
        "interrupted after its timeout of 0.3s; it returned all the same"
    )
    assert failures["raises_another"]["message"] == (
        "interrupted after its timeout of 0.3s; it then raised ValueError: cleanup failed"
    )
    assert failures["raises_another"]["backtrace"][0].endswith(":in `raises_another'")


@SQLITE_ONLY
async def test_a_coroutine_that_swallows_its_cancellation_is_still_reported_timed_out(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    worker = Worker(werk_server.url, concurrency=1)

    @worker.register(timeout=0.3)
    async def stubborn() -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            pass
        return "done anyway"

    client.push(Job("stubborn", result_ttl=60))
    task = start_worker(worker)
    await async_wait_until(lambda: retries_size(client) == 1)
    (job,) = await failed_jobs(worker, task, client)
    assert job["failure"]["errtype"] == "JobTimeout"
    assert (
        job["failure"]["message"] == "cancelled after its timeout of 0.3s; it returned all the same"
    )


@SQLITE_ONLY
async def test_many_timeouts_in_a_row_leave_the_worker_sound(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    # Given 20 plain jobs that loop until interrupted (100 ms timeouts) on two slots,
    # followed by 20 jobs that do a little work each,
    worker = Worker(werk_server.url, concurrency=2)
    interrupted: list[int] = []
    done: list[int] = []
    stray: list[BaseException] = []

    @worker.register
    def stuck(n: int) -> None:
        try:
            while True:
                pass
        except JobTimeoutError:
            interrupted.append(n)
            raise

    @worker.register
    def work(n: int) -> None:
        try:
            ends = time.perf_counter() + 0.005
            while time.perf_counter() < ends:
                pass
        except BaseException as exc:
            stray.append(exc)
            raise
        done.append(n)

    client.push_bulk([Job("stuck", [n], timeout=0.1) for n in range(20)])
    client.push_bulk([Job("work", [n]) for n in range(20)])
    task = start_worker(worker)
    # When they all ran, then every stuck job was interrupted and FAILed once, and every
    # other job ran undisturbed and was ACKed, by a worker still running.
    await async_wait_until(lambda: client.info()["faktory"]["total_processed"] == 40)
    assert sorted(interrupted) == list(range(20))
    assert sorted(done) == list(range(20)) and stray == []
    assert client.info()["faktory"]["total_failures"] == 20
    assert not task.done()
    jobs = await failed_jobs(worker, task, client)
    assert sorted(job["args"][0] for job in jobs) == list(range(20))
    assert {(job["jobtype"], job["failure"]["errtype"]) for job in jobs} == {
        ("stuck", "JobTimeout")
    }


@SQLITE_ONLY
async def test_jobs_ending_right_at_their_timeout_are_reported_once(
    werk_server: ServerProcess,
    client: Client,
    start_worker: Start,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given plain jobs that loop for their whole timeout (30 ms) give or take 10 ms (and a
    # few far longer), each followed by a job without timeout,
    caplog.set_level(logging.INFO, logger="werk.worker")
    worker = Worker(werk_server.url, concurrency=2)
    seen: dict[int, str] = {}
    done: list[int] = []
    stray: list[BaseException] = []
    timeout = 0.03
    lengths = [timeout + (n % 21 - 10) / 1000 for n in range(60)] + [0.3] * 4

    @worker.register
    def edge(n: int, seconds: float) -> None:
        ends = time.perf_counter() + seconds
        try:
            while time.perf_counter() < ends:
                pass
        except JobTimeoutError:
            seen[n] = "interrupted"
            raise
        seen[n] = "returned"

    @worker.register
    def plain(n: int) -> None:
        try:
            for _ in range(20_000):
                pass
        except BaseException as exc:
            stray.append(exc)
            raise
        done.append(n)

    jobs = []
    for n, seconds in enumerate(lengths):
        jobs += [Job("edge", [n, seconds], timeout=timeout), Job("plain", [n])]
    client.push_bulk(jobs)
    task = start_worker(worker)
    # When they all ran,
    await async_wait_until(lambda: client.info()["faktory"]["total_processed"] == len(jobs))
    assert not task.done()
    failed = await failed_jobs(worker, task, client)
    # then every job was reported exactly once (the server refused no second report),
    assert not [r for r in caplog.records if "refused" in r.getMessage()]
    numbers = [job["args"][0] for job in failed]
    assert len(numbers) == len(set(numbers))
    assert {(job["jobtype"], job["failure"]["errtype"]) for job in failed} == {
        ("edge", "JobTimeout")
    }
    # every job the exception reached was FAILed, those far past their timeout among them,
    interrupted = {n for n, outcome in seen.items() if outcome == "interrupted"}
    assert interrupted <= set(numbers)
    assert set(range(60, len(lengths))) <= interrupted
    # every job ACKed had returned, and no exception strayed into the jobs without a timeout.
    assert set(range(len(lengths))) - set(numbers) <= {
        n for n, o in seen.items() if o == "returned"
    }
    assert sorted(done) == list(range(len(lengths))) and stray == []


def test_timeout_must_be_positive() -> None:
    worker = Worker("tcp://localhost:1")
    with pytest.raises(ValueError, match="positive"):
        worker.add("x", print, timeout=0)
