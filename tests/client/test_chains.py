"""Job chains from the Python client (Celery's ``chain``): chain() of task jobs pushed with
Chain.push, Client.push and Task.push_bulk, run by a real worker on a real server; the
worker sends a return value the next step takes; a retried step continues the chain; the
handle waits for the last step's result."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.client.conftest import async_wait_until
from tests.conftest import SQLITE_ONLY
from tests.helpers import ServerProcess
from werk.client import Chain, Client, Job, Pushed, RetryIn, Worker, chain, takes_result, task
from werk.client.reports import wants_result
from werk.client.results import ResultTimeoutError
from werk.client.testing import InlineClient

Start = Callable[[Worker], asyncio.Task[None]]


@task
def fetch(n: int) -> int:
    return n + 1


@task
def double(n: int) -> int:
    return 2 * n


@task(result_ttl=60)
def add(n: int, m: int) -> int:
    return n + m


def make_worker(server: ServerProcess, ran: list[str], flaky: list[int]) -> Worker:
    worker = Worker(server.url, concurrency=2, shutdown_timeout=5)
    worker.include(fetch, double, add)

    @worker.register("Flaky")
    def flaky_step(n: int) -> int:
        ran.append(f"flaky {n}")
        if not flaky:
            flaky.append(1)
            raise RetryIn(0)
        return n * 10

    @worker.register("Note")
    def note(*args: object) -> None:
        ran.append(f"note {list(args)}")

    return worker


async def test_a_chain_passes_results_to_its_last_step(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    # Given fetch(1) -> double(result) -> add(result, 10), pushed as one chain
    start_worker(make_worker(werk_server, [], []))
    pushed = chain(fetch.job(1), double.step(), add.step(10)).push(client)
    # Then the handle is on the last step, and waits for its result: ((1+1)*2)+10
    assert pushed.jobtype == "add"
    assert await asyncio.to_thread(pushed.result, 20) == 14


async def test_every_chain_ends_with_its_results_under_a_fast_worker(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    # Given a worker running 10 jobs at once (`werk worker -c 10`), waiting for work
    worker = Worker(werk_server.url, concurrency=10, shutdown_timeout=5)
    worker.include(fetch, add)
    start_worker(worker)
    await async_wait_until(lambda: client.info()["faktory"]["tasks"]["Workers"]["size"])

    # When 30 chains fetch(n) -> add(result, 1) -> add(result, 10) are pushed one by one,
    # each later step asking for its result, and each step is run as soon as it is stored
    def push_all() -> list[tuple[str, Pushed[Any]]]:
        pushed = []
        for n in range(30):
            middle = add.step(1)
            pushed.append((middle.jid, chain(fetch.job(n), middle, add.step(10)).push(client)))
        return pushed

    pushed = await asyncio.to_thread(push_all)
    # Then every last step's result arrives (a pending record written after the chain's first
    # job was stored, or next to a step's own store write, replaced it: 28 of 30 timed out)
    deadline = time.monotonic() + 20

    def outcome(last: Pushed[Any]) -> Any:
        try:
            return last.result(max(0.1, deadline - time.monotonic()))
        except ResultTimeoutError as exc:
            return str(exc)

    finals = await asyncio.to_thread(lambda: [outcome(last) for _, last in pushed])
    assert finals == [n + 12 for n in range(30)]
    # And every middle step's record says succeeded, with its result
    middles = await asyncio.to_thread(lambda: [client.job_state(jid) for jid, _ in pushed])
    assert [(s.state, s.result) for s in middles] == [("succeeded", n + 2) for n in range(30)]


@SQLITE_ONLY
async def test_steps_take_results_one_by_one_and_a_retried_step_continues(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    ran: list[str] = []
    start_worker(make_worker(werk_server, ran, []))
    steps = chain(
        fetch.job(4),
        takes_result(Job("Flaky", [])),  # fails once, retried at once, then returns 50
        Job("Note", ["plain"]),  # takes nothing
        Job("Note", ["last"], result_ttl=60),
    )
    assert isinstance(steps, Chain) and steps.last is not None
    last_jid = steps.last.jid
    first = client.push(steps)  # Client.push sends it as one job
    assert first == steps.jid != last_jid
    assert await asyncio.to_thread(client.result, last_jid, 20) is None
    assert ran == ["flaky 5", "flaky 5", "note ['plain']", "note ['last']"]


@SQLITE_ONLY
async def test_task_push_bulk_hands_out_the_last_steps(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    start_worker(make_worker(werk_server, [], []))
    bulk = add.using(client).push_bulk([chain(fetch.job(n), add.step(100)) for n in (1, 2)])
    assert bulk.refused == {} and [p.jobtype for p in bulk.pushed] == ["add", "add"]
    results = [await asyncio.to_thread(p.result, 20) for p in bulk.pushed]
    assert results == [102, 103]
    await async_wait_until(lambda: client.info()["faktory"]["queues"].get("default", 0) == 0)


def test_the_worker_sends_a_value_when_the_next_step_takes_it() -> None:
    taking = chain(fetch.job(1), double.step()).to_dict()
    assert wants_result(taking)
    assert not wants_result(chain(fetch.job(1), double.job(2)).to_dict())
    assert wants_result(chain(fetch.job(1), takes_result(Job("X"))).to_dict())
    assert not wants_result({"custom": {"chain": ["x"]}})


def test_chain_refuses_what_the_server_would() -> None:
    with pytest.raises(ValueError, match="2 to 51 jobs, not 1"):
        chain(fetch.job(1))
    with pytest.raises(ValueError, match="2 to 51 jobs, not 52"):
        chain(*[fetch.job(n) for n in range(52)])
    inner = chain(fetch.job(1), double.job(2))
    with pytest.raises(ValueError, match="job 1 of the chain carries a chain"):
        chain(fetch.job(1), inner)
    with pytest.raises(ValueError, match="first job of a chain takes the result"):
        chain(double.step(), fetch.job(1))
    step = fetch.job(1)
    with pytest.raises(ValueError, match="one jid twice"):
        chain(step, double.job(2), step)
    wire = chain(fetch.job(1), double.job(5), add.step(3)).to_dict()
    steps = wire["custom"]["chain"]
    assert [(s["jobtype"], s["args"]) for s in steps] == [("double", [5]), ("add", [3])]
    assert "custom" not in steps[0]
    assert steps[1]["custom"] == {"chain_result": True, "result_ttl": 60}
    with pytest.raises(TypeError):
        add.step()  # add's second parameter is missing


def test_an_inline_client_runs_the_whole_chain() -> None:
    # Celery's eager mode: each step runs as the one before it succeeds, with its result
    worker = Worker("tcp://localhost:1")
    worker.include(fetch, double, add)
    inline = InlineClient(worker)
    pushed = chain(fetch.job(1), double.step(), add.step(10)).push(inline)
    assert pushed.result() == 14
    assert [job["jobtype"] for job in inline.done] == ["fetch", "double", "add"]
    assert [job["args"] for job in inline.done] == [[1], [2], [4, 10]]
