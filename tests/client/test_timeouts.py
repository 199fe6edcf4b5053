"""Job timeouts against a real server: coroutines are cancelled; threads run on and keep
their slot, unless registered with ``interrupt=True``, which interrupts them."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.client.conftest import async_wait_until, retries_size, wait_until
from tests.client.test_worker import Start, retry_jobs
from tests.conftest import SQLITE_ONLY
from tests.helpers import ServerProcess
from werk.client import TIMEOUT_ERRTYPE, Client, Job, JobTimeoutError, Middleware, Worker, task


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


class SlowHooks(Middleware):
    """Middleware whose ``before_job`` and ``after_job`` hooks take ``seconds`` each."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def before_job(self, job: dict[str, Any]) -> None:
        time.sleep(self.seconds)

    def after_job(self, job: dict[str, Any], exc: BaseException | None) -> None:
        time.sleep(self.seconds)


@SQLITE_ONLY
@pytest.mark.parametrize("kind", ["plain", "interrupt", "async"])
@pytest.mark.parametrize("nap", [0.0, 1.0])
async def test_the_timeout_bounds_the_function_not_its_middleware_hooks(
    werk_server: ServerProcess, client: Client, start_worker: Start, kind: str, nap: float
) -> None:
    # Given a function with a timeout of 0.3 s that naps ``nap`` seconds, and middleware
    # whose hooks take 0.5 s before it and 0.5 s after it
    worker = Worker(werk_server.url, concurrency=1, middleware=[SlowHooks(0.5)])
    if kind == "async":

        @worker.register("napper", timeout=0.3)
        async def napper_coroutine(seconds: float) -> None:
            await asyncio.sleep(seconds)

    else:

        @worker.register("napper", timeout=0.3, interrupt=kind == "interrupt")
        def napper(seconds: float) -> None:
            time.sleep(seconds)

    # When it runs
    client.push(Job("napper", [nap]))
    task = start_worker(worker)
    await async_wait_until(lambda: client.info()["faktory"]["total_processed"] == 1)
    # Then only the function's own time counts: at once, it is ACKed, though its hooks took
    # 1 s; napping past 0.3 s, it is FAILed as timed out
    failed = await failed_jobs(worker, task, client)
    if nap == 0.0:
        assert failed == []
    else:
        assert [job["failure"]["errtype"] for job in failed] == ["JobTimeout"]


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("interrupt", "big", "message"),
    [
        # by default the function runs on: the FAIL goes out at the timeout
        (
            False,
            "big slept",
            "still running after its timeout of 0.3s"
            " (its thread runs on; the slot stays busy until it returns)",
        ),
        # interrupted, it gets the exception as the sleep returns; the FAIL goes out once
        # it had UNWIND_GRACE to unwind
        (True, "big interrupted", "interrupted after its timeout of 0.3s, still running 1s later"),
    ],
)
async def test_timed_out_thread_in_a_call_keeps_its_slot_until_it_returns(
    werk_server: ServerProcess,
    client: Client,
    start_worker: Start,
    interrupt: bool,
    big: str,
    message: str,
) -> None:
    worker = Worker(werk_server.url, concurrency=1)
    running = 0
    most = 0
    events: list[str] = []
    lock = threading.Lock()

    @worker.register(timeout=0.3, interrupt=interrupt)
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
    # The FAIL goes out long before the sleep returns ...
    await async_wait_until(lambda: retries_size(client) == 1)
    assert events == []
    # ... and the next job starts only once the function returned: one at a time.
    await async_wait_until(lambda: events == [big, "small slept"])
    assert most == 1
    await async_wait_until(lambda: client.info()["faktory"]["total_processed"] == 2)
    (job,) = await failed_jobs(worker, task, client)
    assert job["failure"]["errtype"] == "JobTimeout"
    assert job["failure"]["message"].startswith(message)


@SQLITE_ONLY
async def test_busy_thread_is_interrupted_its_finally_runs_and_its_slot_frees(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    # Given a worker with one slot and a plain function stuck in a Python loop, declared
    # with interrupt=True,
    worker = Worker(werk_server.url, concurrency=1)
    cleaned: list[int] = []
    after: list[str] = []

    @task(timeout=0.5, interrupt=True)
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

    worker.include(spin)

    client.push(Job("spin"))
    client.push(Job("next_job"))
    began = time.monotonic()
    running = start_worker(worker)
    # When its timeout passes, then it is interrupted: its finally ran, it is FAILed with
    # JobTimeout and the backtrace of its loop, and the slot runs the next job, ACKed.
    await async_wait_until(lambda: after == ["ran"])
    assert time.monotonic() - began < 5
    assert len(cleaned) == 1 and cleaned[0] > 0
    await async_wait_until(lambda: client.info()["faktory"]["total_processed"] == 2)
    assert client.info()["faktory"]["total_failures"] == 1
    (job,) = await failed_jobs(worker, running, client)
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

    @worker.register(timeout=0.3, interrupt=True)
    def reraises() -> None:
        try:
            loop_until_interrupted("reraises")
        finally:
            pass
        raise JobTimeoutError("cleaned up, giving up")

    @worker.register(timeout=0.3, interrupt=True)
    def swallows() -> str:
        loop_until_interrupted("swallows")
        return "done anyway"

    @worker.register(timeout=0.3, interrupt=True)
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
    # Given 20 plain jobs that loop until interrupted (interrupt=True, 100 ms timeouts) on
    # two slots,
    # followed by 20 jobs that do a little work each,
    worker = Worker(werk_server.url, concurrency=2)
    interrupted: list[int] = []
    done: list[int] = []
    stray: list[BaseException] = []

    @worker.register(interrupt=True)
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
    # Given plain jobs (interrupt=True) that loop for their whole timeout (30 ms) give or
    # take 10 ms (and a few far longer), each followed by a job without timeout,
    caplog.set_level(logging.INFO, logger="werk.worker")
    worker = Worker(werk_server.url, concurrency=2)
    seen: dict[int, str] = {}
    done: list[int] = []
    stray: list[BaseException] = []
    timeout = 0.03
    lengths = [timeout + (n % 21 - 10) / 1000 for n in range(60)] + [0.3] * 4

    @worker.register(interrupt=True)
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


LOGGING_JOBS = textwrap.dedent(
    """
    import logging
    import time
    from werk.client import Worker

    worker = Worker(concurrency=4, heartbeat_interval=1)
    log = logging.getLogger("myjob")

    @worker.register("logwork", timeout=0.05)
    def logwork(i, seconds):
        ends = time.monotonic() + seconds
        item = 0
        while time.monotonic() < ends:
            sum(range(300))
            log.info("item %s of job %s", item, i)
            item += 1
    """
)


def last_beat(client: Client) -> float:
    (process,) = client.processes()
    return process.last_beat.timestamp()


@SQLITE_ONLY
def test_a_timed_out_job_that_logs_does_not_freeze_the_worker(
    tmp_path: Path, werk_server: ServerProcess, client: Client
) -> None:
    # Given a `werk worker` whose plain jobs log in a loop (through the handler the
    # worker's own lines go through) long past their 50 ms timeout, with the default:
    # an exception raised in their thread could land while logging's handler lock is
    # held, and every thread, the event loop's too, would then wait for it forever.
    (tmp_path / "logging_jobs.py").write_text(LOGGING_JOBS)
    args = [sys.executable, "-m", "werk", "worker", "logging_jobs:worker", "--url", werk_server.url]
    with (tmp_path / "stderr.txt").open("wb") as stderr:
        proc = subprocess.Popen([*args, "--shutdown-timeout", "0.5"], cwd=tmp_path, stderr=stderr)
    try:
        # When 40 such jobs run on its 4 slots,
        client.push_bulk([Job("logwork", [n, 0.2]) for n in range(40)])
        # then each is FAILed with JobTimeout, its function running on until it returns,
        wait_until(lambda: retries_size(client) == 40, timeout=30)
        # a job still running is FAILed at its timeout, not when it returns,
        began = time.monotonic()
        client.push_bulk([Job("logwork", [n, 60]) for n in range(40, 44)])
        wait_until(lambda: retries_size(client) == 44, timeout=10)
        assert time.monotonic() - began < 5
        # the worker still beats while its 4 threads run on,
        beat = last_beat(client)
        wait_until(lambda: last_beat(client) > beat, timeout=10)
        # and SIGTERM stops it (leaving those threads behind after its shutdown timeout).
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    failures = [job["failure"] for job in retry_jobs(client)]
    assert len(failures) == 44
    assert {f["errtype"] for f in failures} == {"JobTimeout"}
    assert {f["message"] for f in failures} == {
        "still running after its timeout of 0.05s"
        " (its thread runs on; the slot stays busy until it returns)"
    }
