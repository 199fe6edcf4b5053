"""Return values a Werk server refuses in an ACK fail the job, against a real server and
worker (SQLite and Redis): nested too deeply (counting the ACK's own object), NaN or an
infinity, not JSON at all, and a chain step's. The job ends failed or dead, its
retries-exhausted hook runs once, and nothing stays working."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any, cast

import pytest

from tests.client.conftest import async_wait_until
from tests.helpers import ServerProcess
from werk.client import Client, Job, JobFailedError, Worker, chain, task
from werk.client.results import (
    RESULT_NOT_JSON_ERRTYPE,
    RESULT_REFUSED_ERRTYPE,
    RESULT_TOO_DEEP_ERRTYPE,
    RESULT_TOO_LARGE_ERRTYPE,
    ResultRefusedError,
    encode_result,
)
from werk.protocol import jsonwire

Start = Callable[[Worker], asyncio.Task[None]]
STORES = pytest.mark.parametrize("backend", ["sqlite", "redis"], indirect=True)


def nested(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


@task(retry=0, result_ttl=60)
def nest(levels: int) -> Any:
    return nested(levels)


@task(result_ttl=60)
def then(value: Any) -> str:
    return "ran"


def test_encode_result_refuses_what_the_server_refuses() -> None:
    # The ACK {"jid":...,"result":...} is one level: a 99-deep value is the deepest taken
    assert jsonwire.depth(jsonwire.loads(b'{"result":' + encode_result(nested(99)) + b"}")) == 100
    for levels in (100, 150, 1000, 5000):
        with pytest.raises(ResultRefusedError) as deep:
            encode_result(nested(levels))
        assert deep.value.errtype == RESULT_TOO_DEEP_ERRTYPE
    circular: list[Any] = []
    circular.append(circular)
    for value in (math.nan, [math.inf], {"x": -math.inf}, {1, 2}, object(), circular):
        with pytest.raises(ResultRefusedError) as odd:
            encode_result(value)
        assert odd.value.errtype == RESULT_NOT_JSON_ERRTYPE
    assert encode_result({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()


def states(client: Client, jids: list[str]) -> dict[str, str]:
    return {jid: client.job_state(jid).state for jid in jids}


@STORES
async def test_a_result_the_server_would_refuse_fails_the_job_once(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    hooked: list[tuple[str, str]] = []

    def exhausted(job: dict[str, Any], exc: BaseException) -> None:
        hooked.append((job["jid"], getattr(exc, "errtype", type(exc).__name__)))

    worker = Worker(werk_server.url, concurrency=2, shutdown_timeout=5)
    worker.include(nest, then)

    @worker.register(on_retries_exhausted=exhausted)
    def deep(levels: int) -> Any:
        return nested(levels)

    @worker.register(on_retries_exhausted=exhausted)
    def odd(kind: str) -> Any:
        return {"nan": math.nan, "inf": [math.inf], "set": {1}}[kind]

    start_worker(worker)
    fine = client.push(Job("deep", [99], retry=0, result_ttl=60))
    expected = {
        client.push(Job("deep", [n], retry=0, result_ttl=60)): RESULT_TOO_DEEP_ERRTYPE
        for n in (100, 150, 1000)
    }
    expected |= {
        client.push(Job("odd", [k], retry=0, result_ttl=60)): RESULT_NOT_JSON_ERRTYPE
        for k in ("nan", "inf", "set")
    }
    # retry -1: straight to the dead set (retry 0 above: discarded, "failed")
    dead = client.push(Job("deep", [150], retry=-1, result_ttl=60))
    expected[dead] = RESULT_TOO_DEEP_ERRTYPE
    assert await asyncio.to_thread(client.result, fine, 20) == nested(99)
    for jid, errtype in expected.items():
        with pytest.raises(JobFailedError) as failed:
            await asyncio.to_thread(client.result, jid, 20)
        assert failed.value.errtype == errtype, failed.value
        assert failed.value.state in {"failed", "dead"}
    await async_wait_until(lambda: len(hooked) == len(expected), timeout=15)
    await asyncio.sleep(0.5)  # no second call
    assert sorted(hooked) == sorted(expected.items())
    info = client.info()["faktory"]
    assert info["total_failures"] == len(expected)
    assert "working" not in states(client, [fine, *expected]).values()


async def test_a_result_no_retry_can_cure_sends_the_job_to_the_dead_set_at_once(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    # Too large (the server's refusal) and not JSON (the worker's): the same function would
    # return the same value on every run, so the default retry (25, about three weeks)
    # would only repeat the failure. Such jobs now go to the dead set after one run.
    worker = Worker(werk_server.url, concurrency=2, shutdown_timeout=5)
    runs: list[str] = []

    @worker.register
    def huge() -> str:
        runs.append("huge")
        return "x" * (1024 * 1024 + 10)

    @worker.register
    def odd() -> float:
        runs.append("odd")
        return math.nan

    start_worker(worker)
    expected = {
        client.push(Job("huge", result_ttl=60)): RESULT_TOO_LARGE_ERRTYPE,
        client.push(Job("odd", result_ttl=60)): RESULT_NOT_JSON_ERRTYPE,
    }
    for jid, errtype in expected.items():
        with pytest.raises(JobFailedError) as failed:
            await asyncio.to_thread(client.result, jid, 20)
        assert (failed.value.state, failed.value.errtype) == ("dead", errtype)
    sets = client.info()["faktory"]["sets"]
    assert (sets["dead"], sets["retries"]) == (2, 0)
    assert sorted(runs) == ["huge", "odd"]


@STORES
async def test_a_chain_step_whose_result_is_too_deep_fails_and_ends_the_chain(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    worker = Worker(werk_server.url, concurrency=2, shutdown_timeout=5)
    worker.include(nest, then)
    start_worker(worker)
    # 100 levels: the worker refuses to send it; 99 levels: the server takes the ACK but
    # the next step (the value prepended to its args) nests too deep, and it ends the chain
    first: dict[int, str] = {}
    for levels in (100, 99):
        steps = chain(nest.job(levels), then.step())
        first[levels] = steps.jid
        pushed = steps.push(client)
        with pytest.raises(JobFailedError) as ended:
            await asyncio.to_thread(pushed.result, 20)
        assert ended.value.errtype == "ChainEnded", ended.value
    with pytest.raises(JobFailedError) as failed:
        await asyncio.to_thread(client.result, first[100], 20)
    assert failed.value.errtype == RESULT_TOO_DEEP_ERRTYPE
    assert client.job_state(first[99]).state == "succeeded"


def test_any_refusal_of_a_result_ack_fails_the_job_but_not_found_does_not() -> None:
    # What the worker does with the server's answer to a result ACK (sans IO): a refusal
    # (here the server's depth error) is the job's FAIL, its last one with retry 0; "Job
    # not found" (the reservation expired, the job is queued again) only logs a warning
    from werk.client.exhausted import LastFail
    from werk.client.processor import Processor
    from werk.client.reports import result_ack
    from werk.client.runner import Runner
    from werk.errors import CommandError

    runner = Runner({}, [])
    runner._exhausted = [lambda job, exc: None]
    processor = Processor(cast(Any, None), runner, cast(Any, None), 0)
    job = {"jid": "j1", "jobtype": "deep", "retry": 0, "custom": {"result_ttl": 60}}
    ack = result_ack(job, [1], 0.5)
    refused = CommandError(jsonwire.depth_error().args[0])
    fail = processor._check_report(ack, refused)
    assert isinstance(fail, LastFail) and fail.data.startswith(b"FAIL ")
    sent = jsonwire.loads(fail.data[5:])
    assert sent["errtype"] == RESULT_REFUSED_ERRTYPE and "nested deeper" in sent["message"]
    assert processor._check_report(ack, CommandError("Job not found j1")) is None
    assert processor._check_report(ack, None) is None
