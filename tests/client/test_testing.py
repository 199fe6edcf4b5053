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

    @task(queue="inline")
    def add(a: int, b: int) -> int:
        return a + b

    @task(queue="inline")
    def divide(a: int, b: int) -> float:
        return a / b

    worker = Worker("tcp://localhost:1", queues=["inline"])
    worker.include(add, divide)
    inline = InlineClient(worker, raise_errors=False)
    set_default_client(inline)  # typed: no ignore needed (tasks.TaskClient)
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
