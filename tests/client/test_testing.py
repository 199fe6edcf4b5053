"""The helpers of werk.client.testing, used the way users' tests would."""

from __future__ import annotations

import asyncio

from werk.client import Client, Job, Worker
from werk.client.testing import run_server


def test_run_server_in_process() -> None:
    with run_server(password="pw") as server:
        assert server.url.startswith("tcp://:pw@127.0.0.1:")
        worker = Worker(server.url, concurrency=2, shutdown_timeout=2)
        done: list[int] = []

        @worker.register
        async def record(n: int) -> None:
            done.append(n)
            if len(done) == 3:
                worker.stop()

        with Client(server.url) as client:
            client.push_bulk([Job("record", [n]) for n in range(3)])
            asyncio.run(worker.run_async())
            assert sorted(done) == [0, 1, 2]
            assert client.info()["faktory"]["total_processed"] == 3


def test_inline_client_as_the_tasks_default_client_keeps_their_outcomes() -> None:
    """Celery's eager mode: with an InlineClient as the default client, a task's push runs
    it at once and ``Pushed.result()`` returns its value or raises its failure."""
    import pytest

    from werk.client import JobFailedError, UnknownJobError, set_default_client, task
    from werk.client.testing import InlineClient

    @task(queue="inline", result_ttl=60)
    def add(a: int, b: int) -> int:
        return a + b

    @task(queue="inline", result_ttl=60)
    def divide(a: int, b: int) -> float:
        return a / b

    worker = Worker("tcp://localhost:1", queues=["inline"])
    worker.include(add, divide)
    inline = InlineClient(worker, raise_errors=False)
    set_default_client(inline)  # typed: no ignore needed (pushed.TaskClient)
    try:
        assert add.push(2, 3).result() == 5
        assert divide.push(1, 4).result(timeout=1) == 0.25
        failed = divide.push(1, 0)
        with pytest.raises(JobFailedError) as raised:
            failed.result()
        assert raised.value.errtype == "ZeroDivisionError"
        assert failed.state().state == "failed"
        assert not failed.delete()  # inline jobs never wait in a queue
        with pytest.raises(UnknownJobError):
            inline.result("no-such-jid")
    finally:
        set_default_client(None)


def test_inline_client_keeps_and_refuses_results_as_a_worker_and_server_do() -> None:
    """Eager mode differs from a real worker in no result it keeps or refuses: a job
    pushed without result_ttl has no result to read (UnknownJobError, as from a server),
    and a return value a real worker would not send (too deep, NaN, not JSON) fails it."""
    import math
    from typing import Any

    import pytest

    from werk.client import JobFailedError, UnknownJobError, task
    from werk.client.results import ResultRefusedError
    from werk.client.testing import InlineClient

    @task
    def untracked() -> int:
        return 1

    @task(retry=0, result_ttl=60)
    def value(kind: str) -> Any:
        nested: Any = 0
        for _ in range(100):
            nested = [nested]
        return {"deep": nested, "nan": math.nan, "set": {1}, "tuple": (1, 2)}[kind]

    @task(retry=0)
    def opaque() -> object:
        return object()  # dropped by a real worker too: nobody asked for it

    worker = Worker("tcp://localhost:1")
    worker.include(untracked, value, opaque)
    inline = InlineClient(worker, raise_errors=False)
    pushed = untracked.using(inline).push()
    assert [job["jid"] for job in inline.done] == [pushed.jid]
    with pytest.raises(UnknownJobError):
        pushed.result()
    assert pushed.state().state == "unknown"
    assert value.using(inline).push("tuple").result() == [1, 2]  # as JSON keeps it
    for kind, errtype in (
        ("deep", "ResultTooDeep"),
        ("nan", "ResultNotJSON"),
        ("set", "ResultNotJSON"),
    ):
        refused = value.using(inline).push(kind)
        with pytest.raises(JobFailedError) as raised:
            refused.result()
        assert raised.value.errtype == errtype
        assert isinstance(inline.failed[-1][1], ResultRefusedError)
    opaque.using(inline).push()
    assert len(inline.done) == 3 and len(inline.failed) == 3
    with pytest.raises(ResultRefusedError):
        InlineClient(worker).push(value.job("nan"))


def test_inline_client_ends_a_chain_whose_step_fails_as_the_server_does() -> None:
    import pytest

    from werk.client import Job, JobFailedError, chain, takes_result, task
    from werk.client.testing import InlineClient

    @task(retry=0)
    def first(n: int) -> int:
        return 10 // n

    @task(result_ttl=60)
    def second(value: int) -> int:
        return value + 1

    worker = Worker("tcp://localhost:1")
    worker.include(first, second)
    inline = InlineClient(worker, raise_errors=False)
    steps = chain(first.job(0), second.step(), takes_result(Job("second", [], result_ttl=60)))
    pushed = steps.push(inline)
    with pytest.raises(JobFailedError) as ended:
        pushed.result()
    assert ended.value.errtype == "ChainEnded"
    assert steps.jid in ended.value.error_message
    assert inline.job_state(steps.last.jid if steps.last else "").state == "failed"
    middle = steps.custom["chain"][0]["jid"] if steps.custom else ""
    assert inline.job_state(middle).error == {
        "errtype": "ChainEnded",
        "message": ended.value.error_message,
    }
    assert [job["jobtype"] for job in inline.done] == []
    # and one that succeeds runs to its end, keeping the last step's result
    assert chain(first.job(2), second.step(), second.step()).push(inline).result() == 7
