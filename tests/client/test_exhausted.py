"""Retries-exhausted hooks against a real ``werk server``: once, on the last failure only.

The first test runs on every backend (the hook sees the job in the store's dead set); the
others check the worker's side only, on the embedded store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from tests.client.conftest import async_wait_until
from tests.conftest import SQLITE_ONLY
from tests.helpers import ServerProcess
from werk.client import Client, Job, Middleware, NoRetry, RetryIn, Worker, task

Start = Callable[[Worker], "asyncio.Task[None]"]


def sets(client: Client) -> dict[str, int]:
    """The sizes of the retry, scheduled and dead sets, per INFO."""
    found: dict[str, int] = client.info()["faktory"]["sets"]
    return found


class Recording(Middleware):
    """A worker-wide hook that notes each call and what the server held at that moment."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.calls: list[tuple[str, str, dict[str, int]]] = []

    def on_retries_exhausted(self, job: dict[str, Any], exc: BaseException) -> None:
        with Client(self.url) as client:  # a plain hook runs on a job thread: it may block
            self.calls.append((job["jid"], type(exc).__name__, sets(client)))


async def test_the_hooks_run_once_after_the_last_failure(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    # Given a task with 2 retries that always fails, retried at once (RetryIn 0)
    runs: list[str] = []
    task_calls: list[tuple[str, str]] = []

    async def exhausted(job: dict[str, Any], exc: BaseException) -> None:
        task_calls.append((job["jid"], str(exc)))

    @task(retry=2, on_retries_exhausted=exhausted)
    def flaky() -> None:
        runs.append("run")
        raise RetryIn(0, f"attempt {len(runs)}")

    recording = Recording(werk_server.url)
    worker = Worker(werk_server.url, concurrency=2, middleware=[recording])
    worker.include(flaky)
    # When it runs three times (the first run and its two retries)
    pushed = flaky.using(client).push()
    start_worker(worker)
    await async_wait_until(lambda: recording.calls, timeout=15)
    await asyncio.sleep(0.3)  # room for a wrong second call
    # Then both hooks ran once, after the third FAIL, which the server had already applied
    assert len(runs) == 3
    assert task_calls == [(pushed.jid, "attempt 3")]
    assert len(recording.calls) == 1
    jid, errtype, seen = recording.calls[0]
    assert (jid, errtype) == (pushed.jid, "RetryIn")
    assert seen["dead"] == 1 and seen["retries"] == 0


@SQLITE_ONLY
async def test_no_retry_and_retry_zero_are_last_failures(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    calls: list[tuple[str, str]] = []

    def exhausted(job: dict[str, Any], exc: BaseException) -> None:
        calls.append((job["jobtype"], type(exc).__name__))

    worker = Worker(werk_server.url, concurrency=1)

    @worker.register(on_retries_exhausted=exhausted)
    def parse(text: str) -> None:
        try:
            int(text)
        except ValueError as exc:
            raise NoRetry("not a number") from exc

    @worker.register(on_retries_exhausted=exhausted)
    def ephemeral() -> None:
        raise KeyError("gone")

    # NoRetry on a job with 25 retries left: the dead set at once; retry 0: discarded
    client.push(Job("parse", ["x"], retry=25))
    client.push(Job("ephemeral", [], retry=0))
    start_worker(worker)
    await async_wait_until(lambda: len(calls) == 2, timeout=15)
    assert sorted(calls) == [("ephemeral", "KeyError"), ("parse", "NoRetry")]
    assert sets(client)["dead"] == 1 and sets(client)["retries"] == 0


@SQLITE_ONLY
async def test_a_failure_with_retries_left_calls_no_hook(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    calls: list[str] = []
    worker = Worker(werk_server.url, concurrency=1)

    @worker.register(on_retries_exhausted=lambda job, exc: calls.append(job["jid"]))
    def fails() -> None:
        raise ValueError("first failure of five allowed")

    client.push(Job("fails", [], retry=5))
    start_worker(worker)
    await async_wait_until(lambda: sets(client)["retries"] == 1, timeout=15)
    await asyncio.sleep(0.3)
    assert calls == []


@SQLITE_ONLY
async def test_a_hook_that_raises_is_logged_and_changes_nothing(
    werk_server: ServerProcess,
    client: Client,
    start_worker: Start,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="werk.worker")
    done: list[int] = []

    class Broken(Middleware):
        async def on_retries_exhausted(self, job: dict[str, Any], exc: BaseException) -> None:
            raise RuntimeError("the alerting service is down")

    def broken(job: dict[str, Any], exc: BaseException) -> None:
        raise OSError("no route to the pager")

    worker = Worker(werk_server.url, concurrency=1, middleware=[Broken()])

    @worker.register(on_retries_exhausted=broken)
    def doomed() -> None:
        raise ValueError("no retries")

    @worker.register
    def fine(n: int) -> None:
        done.append(n)

    client.push(Job("doomed", [], retry=-1))
    client.push(Job("fine", [1]))
    task_ = start_worker(worker)
    await async_wait_until(lambda: done == [1], timeout=15)
    client.push(Job("fine", [2]))
    await async_wait_until(lambda: done == [1, 2], timeout=15)
    # Both hooks' errors were logged; the job failed once and sits in the dead set
    raised = [r for r in caplog.records if "retries-exhausted hook" in r.getMessage()]
    assert [r.exc_info[1].__class__ for r in raised if r.exc_info] == [OSError, RuntimeError]
    info = client.info()["faktory"]
    assert info["sets"]["dead"] == 1 and info["total_failures"] == 1
    assert not task_.done()


@SQLITE_ONLY
async def test_a_result_refused_as_too_large_on_the_last_run_calls_the_hooks(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    # The worker's ACK carried a result over the server's 1 MiB limit; the FAIL it sends
    # instead (errtype ResultTooLarge) is the job's last one with retry 0
    calls: list[tuple[str, str]] = []
    worker = Worker(werk_server.url, concurrency=1)

    @worker.register(on_retries_exhausted=lambda job, exc: calls.append((job["jid"], str(exc))))
    def huge() -> str:
        return "x" * (1024 * 1024 + 10)

    jid = client.push(Job("huge", [], retry=0, result_ttl=60))
    start_worker(worker)
    await async_wait_until(lambda: calls, timeout=15)
    await asyncio.sleep(0.3)
    assert len(calls) == 1 and calls[0][0] == jid and "over the limit" in calls[0][1]
