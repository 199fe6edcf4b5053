"""Per-task retry policies (``retry_in``, ``retry_on``) against a real ``werk server``.

What the policy decides is the worker's FAIL (``retry_in``, ``dead``); the server's side of
those fields is tested on every backend by the RetryIn/NoRetry tests, so the server tests
here run on the embedded store only. The arithmetic of :class:`Backoff` and the guards
against a broken policy are checked without a server."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.client.conftest import async_wait_until
from tests.conftest import SQLITE_ONLY
from tests.helpers import ServerProcess
from werk.client import Backoff, Client, Job, RetryIn, Worker, task
from werk.client.limits import RateLimited
from werk.client.registration import Registration
from werk.client.retrypolicy import policy_fields
from werk.fate import RATE_LIMITED
from werk.job import parse_time

Start = Callable[[Worker], "asyncio.Task[None]"]


def retry_entries(client: Client) -> dict[str, tuple[float, dict[str, Any]]]:
    """The retry set by jobtype: seconds from now until the entry's retry, and its failure."""
    now = time.time()
    return {
        entry.jobtype: (entry.at.timestamp() - now, entry.failure or {})
        for entry in client.jobs("retries").entries
    }


def in_retries(client: Client, count: int, retry_count: int = 0) -> bool:
    """Whether the retry set holds ``count`` jobs, each after failure ``retry_count + 1``."""
    found = retry_entries(client)
    return len(found) == count and all(
        failure.get("retry_count") == retry_count for _, failure in found.values()
    )


@SQLITE_ONLY
async def test_a_policy_sets_the_delay_of_each_retry_by_its_retry_count(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    # Given a task whose policy retries its first failure at once and its second in 3000 s
    calls: list[tuple[int, str]] = []

    def policy(retry_count: int, exc: BaseException) -> float:
        calls.append((retry_count, type(exc).__name__))
        return 0 if retry_count == 0 else 3000

    @task(retry=5, retry_in=policy)
    def flaky() -> None:
        raise ValueError("down")

    worker = Worker(werk_server.url, concurrency=1)
    worker.include(flaky)
    # When it fails twice (Faktory's first backoff alone would be 15 to 44 s)
    flaky.using(client).push()
    start_worker(worker)
    await async_wait_until(lambda: in_retries(client, 1, retry_count=1), timeout=10)
    # Then the policy saw failure.retry_count 0 then 1, and the retry is due in 3000 s
    assert calls == [(0, "ValueError"), (1, "ValueError")]
    delay, failure = retry_entries(client)["flaky"]
    assert 2995 <= delay <= 3001
    assert abs(time.time() + delay - parse_time(failure["next_at"])) < 1


@SQLITE_ONLY
async def test_none_keeps_the_servers_backoff_and_a_raised_retry_in_wins(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    # Given one policy for three job types: 600 s, except None for a ValueError
    def policy(retry_count: int, exc: BaseException) -> float | None:
        return None if isinstance(exc, ValueError) else 600

    worker = Worker(werk_server.url, concurrency=3)

    @worker.register(retry_in=policy)
    def missing() -> None:
        raise KeyError("gone")

    @worker.register(retry_in=policy)
    def invalid() -> None:
        raise ValueError("bad")

    @worker.register(retry_in=policy)
    def asks() -> None:
        raise RetryIn(1200, "come back later")

    client.push_bulk([Job("missing", []), Job("invalid", []), Job("asks", [])])
    start_worker(worker)
    await async_wait_until(lambda: in_retries(client, 3), timeout=10)
    found = retry_entries(client)
    # Then: the policy's 600 s; Faktory's backoff of a first failure (15 + 0..29 s); the
    # job's own RetryIn over the policy
    assert 595 <= found["missing"][0] <= 601
    assert 10 <= found["invalid"][0] <= 45
    assert 1195 <= found["asks"][0] <= 1201


@SQLITE_ONLY
async def test_the_last_failure_asks_no_policy_and_goes_dead(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    # Given a task with one retry, a policy that retries at once, and an exhausted hook
    calls: list[int] = []
    exhausted: list[str] = []

    def policy(retry_count: int, exc: BaseException) -> float:
        calls.append(retry_count)
        return 0

    worker = Worker(werk_server.url, concurrency=1)

    @worker.register(retry_in=policy, on_retries_exhausted=lambda job, exc: exhausted.append(""))
    def doomed() -> None:
        raise ValueError("always")

    # When it fails twice
    client.push(Job("doomed", [], retry=1))
    start_worker(worker)
    await async_wait_until(lambda: exhausted, timeout=10)
    # Then the policy was asked for the retry only: the second FAIL was the job's last
    assert calls == [0]
    sets = client.info()["faktory"]["sets"]
    assert sets["dead"] == 1 and sets["retries"] == 0


@SQLITE_ONLY
async def test_backoff_delays_within_its_exponential_cap(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    worker = Worker(werk_server.url, concurrency=4)

    @worker.register(retry_in=Backoff(base=500, max=800, jitter=False))
    def steady(n: int) -> None:
        raise ConnectionError("refused")

    @worker.register(retry_in=Backoff(base=10, max=15))
    def jittered(n: int) -> None:
        raise ConnectionError("refused")

    client.push(Job("steady", [0]))
    client.push_bulk([Job("jittered", [n]) for n in range(4)])
    start_worker(worker)
    await async_wait_until(lambda: len(client.jobs("retries").entries) == 5, timeout=10)
    now = time.time()
    for entry in client.jobs("retries").entries:
        delay = entry.at.timestamp() - now
        count = (entry.failure or {})["retry_count"]
        if entry.jobtype == "steady":
            # no jitter: base * 2**0 for the first failure
            assert count == 0 and 495 <= delay <= 501
        else:
            # full jitter: from 0 to min(max, base * 2**retry_count), rounded up
            assert -2 <= delay <= min(15, 10 * 2**count) + 1


@SQLITE_ONLY
async def test_retry_on_sends_other_exceptions_to_the_dead_set(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    worker = Worker(werk_server.url, concurrency=2)

    @worker.register(retry_on=(ConnectionError, TimeoutError))
    def fetch(kind: str) -> None:
        if kind == "network":
            raise ConnectionResetError("reset")  # a ConnectionError: retried
        raise KeyError(kind)  # not worth a retry

    # a KeyError with 25 retries left goes dead; with retry 0 it is discarded, as before
    client.push_bulk(
        [Job("fetch", ["network"]), Job("fetch", ["bug"]), Job("fetch", ["quiet"], retry=0)]
    )
    start_worker(worker)
    await async_wait_until(lambda: client.info()["faktory"]["total_failures"] == 3, timeout=10)
    await async_wait_until(lambda: client.info()["faktory"]["sets"]["dead"] == 1, timeout=5)
    sets = client.info()["faktory"]["sets"]
    assert sets["retries"] == 1 and sets["dead"] == 1
    (dead,) = client.jobs("dead").entries
    assert dead.args == ["bug"] and (dead.failure or {})["errtype"] == "KeyError"
    (retried,) = client.jobs("retries").entries
    assert retried.args == ["network"]


def test_backoff_is_celerys_exponential_backoff() -> None:
    steady = Backoff(base=2, max=50, jitter=False)
    assert [steady(n, ValueError()) for n in range(7)] == [2, 4, 8, 16, 32, 50, 50]
    assert steady(10_000, ValueError()) == 50  # no overflow for a long-failing job
    jittered = Backoff(base=2, max=50)
    for count in range(8):
        draws = [jittered(count, ValueError()) for _ in range(200)]
        assert all(0 <= d <= min(50, 2 * 2**count) for d in draws)
        assert len(set(draws)) > 1
    assert Backoff() == Backoff(base=1.0, max=600.0, jitter=True)  # retry_backoff=True
    for bad in ({"base": 0}, {"max": -1}, {"base": math.inf}):
        with pytest.raises(ValueError, match="positive seconds"):
            Backoff(**bad)


def test_bad_options_are_refused_at_registration() -> None:
    with pytest.raises(TypeError, match="exception classes"):
        Registration.of("x", print, retry_on=("ValueError",))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable or a Backoff"):
        Registration.of("x", print, retry_in=30)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable or a Backoff"):
        task(retry_in=30)  # type: ignore[call-overload]
    assert Registration.of("x", print, retry_on=KeyError).retry_on == (KeyError,)


def test_a_broken_policy_leaves_the_delay_to_the_server(
    caplog: pytest.LogCaptureFixture,
) -> None:
    job = {"jid": "j1", "jobtype": "flaky", "retry": 3}

    def raising(count: int, exc: BaseException) -> float:
        raise RuntimeError("oops")

    caplog.set_level(logging.ERROR, "werk.worker")
    assert policy_fields(job, ValueError(), "ValueError", raising, None) == {}
    for value in (-1, math.nan, math.inf, "10", True):
        assert policy_fields(job, ValueError(), "ValueError", lambda c, e, v=value: v, None) == {}
    assert len(caplog.records) == 6
    assert "retry_in policy" in caplog.records[0].getMessage()
    assert "server's backoff applies" in caplog.records[-1].getMessage()
    # a fraction rounds up to whole seconds, as RetryIn does
    assert policy_fields(job, ValueError(), "ValueError", lambda c, e: 0.2, None) == {"retry_in": 1}


def test_only_a_failure_that_will_be_retried_gets_the_policy() -> None:
    def policy(count: int, exc: BaseException) -> float:
        return 60

    def fields(job: dict[str, Any], error: BaseException, errtype: str) -> dict[str, Any]:
        return policy_fields(job, error, errtype, policy, (OSError,))

    last = {"jid": "j", "retry": 2, "failure": {"retry_count": 1}}
    assert fields(last, KeyError(), "KeyError") == {}  # the last failure: dead anyway
    assert fields({"jid": "j", "retry": 0}, KeyError(), "KeyError") == {}  # discarded
    limited = RateLimited("retry after 3")
    assert fields({"jid": "j"}, limited, RATE_LIMITED) == {}  # a rate limit, no retry used
    assert fields({"jid": "j"}, KeyError(), "KeyError") == {"dead": True}
    assert fields({"jid": "j"}, OSError(), "OSError") == {"retry_in": 60}
