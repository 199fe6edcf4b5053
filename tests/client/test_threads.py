"""JobThreads: plain functions on threads, results and errors back on the loop."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from werk.client.threads import JobThreads


async def test_result_and_error_come_back_to_the_loop() -> None:
    threads = JobThreads(2)
    try:
        assert await threads.run(lambda a, b: a + b, 2, 3) == 5
        assert await threads.run(threading.current_thread) is not threading.current_thread()
        with pytest.raises(ZeroDivisionError):
            await threads.run(lambda: 1 / 0)
    finally:
        threads.shutdown()


async def test_runs_as_many_at_once_as_it_has_threads() -> None:
    threads = JobThreads(4)
    running, peak, lock = 0, 0, threading.Lock()

    def job() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    try:
        started = time.monotonic()
        await asyncio.gather(*(threads.run(job) for _ in range(8)))
        assert peak == 4
        assert 0.09 < time.monotonic() - started < 1.0  # two rounds of four
    finally:
        threads.shutdown()


async def test_shutdown_ends_idle_threads() -> None:
    threads = JobThreads(3, name="werk-test-job")
    threads.shutdown()
    deadline = time.monotonic() + 5
    while any(t.name.startswith("werk-test-job") for t in threading.enumerate()):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
