"""Job timeouts against a real server: coroutines are cancelled, threads keep their slot."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tests.client.conftest import async_wait_until, retries_size
from tests.client.test_worker import Start, retry_jobs
from tests.conftest import SQLITE_ONLY
from tests.helpers import ServerProcess
from werk.client import TIMEOUT_ERRTYPE, Client, Job, Worker


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
    worker.stop()
    await task
    assert events == ["cancelled"]
    (job,) = await asyncio.to_thread(retry_jobs, client)
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
async def test_timed_out_thread_keeps_its_slot_busy(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    worker = Worker(werk_server.url, concurrency=1)
    running = 0
    most = 0
    finished: list[str] = []
    lock = threading.Lock()

    @worker.register(timeout=0.3)
    def convert(name: str) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(3.0 if name == "big" else 0.01)
        with lock:
            running -= 1
        finished.append(name)

    client.push(Job("convert", ["big"]))
    client.push(Job("convert", ["small"]))
    start_worker(worker)
    # The FAIL goes out at the timeout, long before the thread returns ...
    await async_wait_until(lambda: retries_size(client) == 1)
    assert finished == []
    # ... and the next job starts only once the thread is done: one function at a time.
    await async_wait_until(lambda: finished == ["big", "small"])
    assert most == 1
    await async_wait_until(lambda: client.info()["faktory"]["total_processed"] == 2)


def test_timeout_must_be_positive() -> None:
    worker = Worker("tcp://localhost:1")
    with pytest.raises(ValueError, match="positive"):
        worker.add("x", print, timeout=0)
