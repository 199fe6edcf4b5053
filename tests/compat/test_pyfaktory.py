"""PyPI ``pyfaktory`` 0.2.13 against a real ``werk server``.

Public API used: ``Producer.push``/``push_bulk``, ``Client.info``/``mutate``/``queue_pause``/
``queue_unpause``, and ``Consumer`` for the worker loop. pyfaktory has no public per-job
fetch/ack/fail calls; for those steps the tests use ``Client._fetch``/``_ack``/``_fail``, the
client's own command methods that its ``Consumer`` calls.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pyfaktory import Client, Consumer, Job, JobFilter, MutateOperation, Producer
from pyfaktory.util.enums import State
from pyfaktory.util.exceptions import FaktroyWorkProtocolError

from tests.compat.support import raw_info, rfc3339_in, summary, thread_errors, wait_for_info
from tests.helpers import ServerProcess

ClientFactory = Callable[..., Client]

# pyfaktory's heartbeat thread checks the client state, then waits for the client lock; if
# the client is disconnected in between, _beat() raises "Client state is State.END while
# `_beat` is only valid ..." in that thread. That is a client-side shutdown race, not a
# server reply, so it is the one thread error tolerated below.
HEARTBEAT_RACE = "while `_beat` is only valid"


@pytest.fixture
def werk_server(flushed_server: ServerProcess) -> ServerProcess:
    """The module's server on each backend, FLUSHed before each test. Each test's clients
    disconnect and its worker threads are joined before the next test starts, so nothing
    of one reaches the next but the worker process records FLUSH keeps."""
    return flushed_server


@pytest.fixture
def make_client(werk_server: ServerProcess) -> Iterator[ClientFactory]:
    """Return a factory of connected pyfaktory clients; disconnect them all at the end.

    Consumer clients run a heartbeat thread (every 0.25 s here, so shutdown is quick); the
    fixture joins it and fails on any exception it raised, except the known race above.
    """
    clients: list[Client] = []
    with thread_errors() as caught:
        factory = _factory(werk_server, clients)
        try:
            yield factory
        finally:
            for client in clients:
                if client.state in (State.IDENTIFIED, State.QUIET, State.TERMINATING):
                    client.disconnect()
            for client in clients:
                thread = getattr(client, "heartbeat_thread", None)
                if thread is not None:
                    thread.join(5)
                    assert not thread.is_alive(), "pyfaktory heartbeat thread did not stop"
    unexpected = [
        error
        for error in caught
        if not (
            isinstance(error.exc, FaktroyWorkProtocolError) and HEARTBEAT_RACE in str(error.exc)
        )
    ]
    assert not unexpected, unexpected


def _factory(server: ServerProcess, clients: list[Client]) -> ClientFactory:
    def factory(role: str = "both", url: str | None = None, **kwargs: Any) -> Client:
        if role != "producer":
            kwargs.setdefault("worker_id", uuid.uuid4().hex)
            kwargs.setdefault("beat_period", 0.25)
        client = Client(faktory_url=url or server.url, role=role, **kwargs)
        try:
            client.connect()
        except BaseException:
            client.sock.close()
            raise
        clients.append(client)
        return client

    return factory


def test_push_fetch_ack(make_client: ClientFactory, werk_server: ServerProcess) -> None:
    client = make_client()
    producer = Producer(client=client)
    job = Job(jid="pyf-jid-0001", jobtype="Add", args=[1, 2], custom={"trace": "abc"})
    assert producer.push(job)
    assert summary(client.info())["queues"] == {"default": 1}

    fetched = client._fetch(["default"])
    assert fetched is not None
    assert fetched["jid"] == "pyf-jid-0001"
    assert (fetched["jobtype"], fetched["args"], fetched["queue"]) == ("Add", [1, 2], "default")
    assert fetched["custom"] == {"trace": "abc"}
    # pyfaktory defaults (retry 25, backtrace 5, reserve_for 1800) round-trip, and its
    # always-present "at": "" meant "now".
    assert (fetched["retry"], fetched["backtrace"], fetched["reserve_for"]) == (25, 5, 1800)
    assert fetched["enqueued_at"]
    assert summary(client.info())["working"] == 1

    assert client._ack(jid=fetched["jid"])
    after = summary(client.info())
    assert (after["queues"], after["working"], after["processed"], after["failures"]) == (
        {},
        0,
        1,
        0,
    )
    assert summary(raw_info(werk_server)) == after


def test_push_bulk(make_client: ClientFactory) -> None:
    # Also: pyfaktory raises if HI carries "i"/"s" and it has no password, so connecting
    # here shows a password-less server does not send them.
    producer = Producer(client=make_client(role="producer"))
    assert producer.client.state == State.IDENTIFIED
    jobs = [Job(jid=f"pyf-bulk-{i:03}", jobtype="Bulk", args=[i]) for i in range(5)]
    # PUSHB must be answered with a bulk string: pyfaktory asserts the reply starts with "$".
    assert producer.push_bulk(jobs) == {}
    assert summary(producer.client.info())["queues"] == {"default": 5}


def test_fail_lands_in_retries_at_once(make_client: ClientFactory) -> None:
    client = make_client()
    assert Producer(client=client).push(Job(jid="pyf-fail-01", jobtype="Flaky", args=[]))
    fetched = client._fetch(["default"])
    assert fetched is not None and fetched["jid"] == "pyf-fail-01"

    assert client._fail(
        jid="pyf-fail-01", errtype="ValueError", message="nope", backtrace=["a.py:1", "b.py:2"]
    )
    info = client.info()
    assert info["faktory"]["sets"]["retries"] == 1
    assert info["faktory"]["tasks"]["Retries"]["size"] == 1
    after = summary(info)
    assert (after["processed"], after["failures"], after["working"], after["queues"]) == (
        1,
        1,
        0,
        {},
    )

    # FAIL of a jid that is not reserved: the server's -ERR surfaces as the client's error.
    with pytest.raises(FaktroyWorkProtocolError, match="ERR"):
        client._fail(jid="pyf-fail-01", errtype="E", message="again", backtrace=[])


def test_scheduled_job_runs_when_due(make_client: ClientFactory) -> None:
    client = make_client()
    started = time.monotonic()
    assert Producer(client=client).push(
        Job(jid="pyf-sched-01", jobtype="Later", args=[], at=rfc3339_in(1.0))
    )
    before = summary(client.info())
    assert (before["scheduled"], before["queues"]) == (1, {})

    fetched = None
    while fetched is None and time.monotonic() - started < 6:
        fetched = client._fetch(["default"])
    elapsed = time.monotonic() - started
    assert fetched is not None, "scheduled job never became fetchable"
    assert fetched["jid"] == "pyf-sched-01"
    assert elapsed >= 0.9, f"fetched {elapsed:.2f}s after push, before it was due"
    assert summary(client.info())["scheduled"] == 0
    assert client._ack(jid="pyf-sched-01")


def _filter(**fields: Any) -> JobFilter:
    # JobFilter declares every field Optional but without a default, so all must be given.
    return JobFilter(**{"jids": None, "regexp": None, "jobtype": None, **fields})


def test_mutate(make_client: ClientFactory) -> None:
    client = make_client()
    producer = Producer(client=client)
    far = rfc3339_in(3600)
    for jid, jobtype in (("pyf-sc-a1", "MutA"), ("pyf-sc-a2", "MutA"), ("pyf-sc-b1", "MutB")):
        assert producer.push(Job(jid=jid, jobtype=jobtype, args=[], at=far))
    for jid, arg in (("pyf-rt-1", "needle"), ("pyf-rt-2", "hay"), ("pyf-rt-3", "hay")):
        assert producer.push(Job(jid=jid, jobtype="Retry", args=[arg]))
        fetched = client._fetch(["default"])
        assert fetched is not None and fetched["jid"] == jid
        assert client._fail(jid=jid, errtype="E", message="m", backtrace=[])

    def state() -> tuple[int, int, int, dict[str, int]]:
        now = summary(client.info())
        return now["scheduled"], now["retries"], now["dead"], now["queues"]

    def op(cmd: str, target: str, job_filter: JobFilter | None = None) -> bool:
        return client.mutate(MutateOperation(cmd=cmd, target=target, filter=job_filter))

    assert state() == (3, 3, 0, {})
    assert op("discard", "scheduled", _filter(jobtype="MutA"))
    assert state() == (1, 3, 0, {})
    assert op("kill", "scheduled", _filter(jids=["pyf-sc-b1"]))
    assert state() == (0, 3, 1, {})
    assert op("discard", "retries", _filter(regexp="*needle*"))
    assert state() == (0, 2, 1, {})
    assert op("requeue", "retries", _filter(jids=["pyf-rt-2"]))
    assert state() == (0, 1, 1, {"default": 1})
    fetched = client._fetch(["default"])
    assert fetched is not None and fetched["jid"] == "pyf-rt-2"
    assert fetched["failure"]["message"] == "m"
    assert client._ack(jid="pyf-rt-2")
    assert op("kill", "retries", _filter(jobtype="Retry"))
    assert state() == (0, 0, 2, {})
    assert op("requeue", "dead", _filter(jids=["pyf-sc-b1"]))
    assert state() == (0, 0, 1, {"default": 1})
    # pyfaktory sends clear without any "filter" key (exclude_none)
    assert op("clear", "dead")
    assert state() == (0, 0, 0, {"default": 1})
    assert producer.push(Job(jid="pyf-sc-c1", jobtype="MutC", args=[], at=far))
    assert op("clear", "scheduled")
    assert op("clear", "retries")
    assert state() == (0, 0, 0, {"default": 1})


def test_pause_and_resume(make_client: ClientFactory) -> None:
    client = make_client()
    producer = Producer(client=client)
    assert producer.push(Job(jid="pyf-high-1", jobtype="Hi", args=[], queue="high"))
    assert producer.push(Job(jid="pyf-low-01", jobtype="Lo", args=[], queue="low"))
    assert client.queue_pause(queues=["high"])

    fetched = client._fetch(["high", "low"])
    assert fetched is not None and fetched["jid"] == "pyf-low-01"
    assert client._ack(jid="pyf-low-01")
    assert client._fetch(["high"]) is None  # null after ~2 s: the paused job is not handed out
    assert summary(client.info())["queues"] == {"high": 1}

    assert client.queue_unpause(queues=["high"])
    fetched = client._fetch(["high"])
    assert fetched is not None and fetched["jid"] == "pyf-high-1"
    assert client._ack(jid="pyf-high-1")

    # the "all queues" form (QUEUE PAUSE * / RESUME *)
    assert producer.push(Job(jid="pyf-high-2", jobtype="Hi", args=[], queue="high"))
    assert client.queue_pause(all_queues=True)
    assert producer.push(Job(jid="pyf-low-02", jobtype="Lo", args=[], queue="low"))
    assert client.queue_unpause(all_queues=True)
    fetched = client._fetch(["high", "low"])
    assert fetched is not None and fetched["jid"] == "pyf-high-2"
    assert client._ack(jid="pyf-high-2")


def test_password(werk_server_factory: Any) -> None:
    server = werk_server_factory(password="s3cret-pw")
    good = Client(faktory_url=server.url, role="producer")
    good.connect()
    try:
        assert Producer(client=good).push(Job(jid="pyf-auth-01", jobtype="Secure", args=[]))
        assert summary(good.info())["queues"] == {"default": 1}
    finally:
        good.disconnect()

    bad = Client(faktory_url=f"tcp://:wrong-pw@{server.host}:{server.port}", role="producer")
    with pytest.raises(FaktroyWorkProtocolError, match="Invalid password"):
        bad.connect()
    bad.sock.close()

    # no password at all: pyfaktory refuses before sending HELLO (it sees "i" and "s")
    none = Client(faktory_url=f"tcp://{server.host}:{server.port}", role="producer")
    with pytest.raises(ValueError, match="Password required"):
        none.connect()
    none.sock.close()


def add(a: int, b: int) -> int:
    return a + b


def explode(reason: str) -> None:
    raise RuntimeError(reason)


def test_consumer_loop(make_client: ClientFactory) -> None:
    producer_client = make_client(role="producer")
    producer = Producer(client=producer_client)
    jobs = 12
    for i in range(jobs):
        assert producer.push(Job(jobtype="add", args=[i, i]))
    assert producer.push(Job(jid="pyf-boom-01", jobtype="explode", args=["kaboom"]))

    consumer_client = make_client(role="consumer")
    consumer = Consumer(client=consumer_client, queues=["default"], concurrency=3, grace_period=5)
    consumer.register("add", add)
    consumer.register("explode", explode)

    def run() -> None:
        with contextlib.suppress(SystemExit):  # Consumer.run() always ends with sys.exit(1)
            consumer.run()

    thread = threading.Thread(target=run, name="pyfaktory-consumer", daemon=True)
    thread.start()
    try:
        done = wait_for_info(
            producer_client.info,
            lambda s: s["processed"] == jobs + 1 and s["working"] == 0,
            timeout=20,
        )
        assert done["queues"] == {}
        assert done["failures"] == 1
        assert done["retries"] == 1
        workers = producer_client.info()["faktory"]["tasks"]["Workers"]["size"]
        assert workers >= 1
    finally:
        consumer_client.disconnect()
        thread.join(15)
    assert not thread.is_alive()
