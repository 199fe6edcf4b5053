"""PyPI ``faktory`` 1.0.0 (cdrx/faktory_worker_python) against a real ``werk server``.

The client's public API is small: ``Client.queue`` pushes, ``Connection.fetch`` fetches and
``Worker`` runs the consume loop. Everything else (ACK, FAIL, INFO, MUTATE, QUEUE) goes through
``Connection.reply(cmd, data)`` plus ``next(Connection.get_message())``, the client's own
"send a raw command" facility, which is exactly what ``Worker`` itself uses for ACK/FAIL/BEAT.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import faktory
import pytest
from faktory.exceptions import FaktoryAuthenticationError

from tests.compat.support import Info, raw_info, rfc3339_in, summary, wait_for_info
from tests.helpers import ServerProcess


def call(client: faktory.Client, command: str, data: Any = None) -> str:
    """Send one command with the client's raw facility and return its decoded reply text.

    cdrx returns ``+OK``/``-ERR ...`` both as plain text (``"OK"``, ``"ERR ..."``) and a bulk
    string as its content; a null bulk comes back as ``""``.
    """
    client.faktory.reply(command, data)
    return next(client.faktory.get_message())


def info(client: faktory.Client) -> Info:
    result: Info = json.loads(call(client, "INFO"))
    return result


def mutate(client: faktory.Client, **operation: Any) -> str:
    # Compact JSON: Faktory splits the MUTATE line on spaces, and Connection.reply() would
    # json.dumps() a dict with the default ", " / ": " separators.
    return call(client, "MUTATE", json.dumps(operation, separators=(",", ":")))


@pytest.fixture
def werk_server(flushed_server: ServerProcess) -> ServerProcess:
    """The module's server on each backend, FLUSHed before each test. Each test's clients
    disconnect and its worker threads are joined before the next test starts, so nothing
    of one reaches the next but the worker process records FLUSH keeps."""
    return flushed_server


@pytest.fixture
def client(werk_server: ServerProcess) -> Iterator[faktory.Client]:
    with faktory.Client(werk_server.url) as connected:
        yield connected


def test_push_fetch_ack(client: faktory.Client, werk_server: ServerProcess) -> None:
    assert client.queue("Add", args=(1, 2), jid="cdrx-jid-0001", custom={"trace": "abc"})
    assert summary(info(client))["queues"] == {"default": 1}

    job = client.faktory.fetch(["default"])
    assert job is not None
    assert job["jid"] == "cdrx-jid-0001"
    assert job["jobtype"] == "Add"
    assert job["args"] == [1, 2]
    assert job["queue"] == "default"
    assert job["custom"] == {"trace": "abc"}
    # cdrx defaults: retry 5, backtrace 0, priority 5 (all must round-trip).
    assert (job["retry"], job["backtrace"], job["priority"]) == (5, 0, 5)
    assert job["enqueued_at"] and job["created_at"]
    assert summary(info(client))["working"] == 1

    assert call(client, "ACK", {"jid": job["jid"]}) == "OK"
    after = summary(info(client))
    assert after["queues"] == {}
    assert after["working"] == 0
    assert after["processed"] == 1
    assert after["failures"] == 0
    # The client's view of INFO matches an independent raw peer's.
    assert summary(raw_info(werk_server)) == after


def test_fail_lands_in_retries_at_once(client: faktory.Client) -> None:
    assert client.queue("Flaky", args=["x"], jid="cdrx-fail-01")
    job = client.faktory.fetch(["default"])
    assert job is not None and job["jid"] == "cdrx-fail-01"

    # The payload cdrx's Worker sends: {jid, errtype, message}, no backtrace.
    reply = call(client, "FAIL", {"jid": job["jid"], "errtype": "ValueError", "message": "nope"})
    assert reply == "OK"
    raw = info(client)
    assert raw["faktory"]["sets"]["retries"] == 1
    assert raw["faktory"]["tasks"]["Retries"]["size"] == 1
    after = summary(raw)
    assert (after["processed"], after["failures"], after["working"]) == (1, 1, 0)
    assert after["queues"] == {}

    # FAIL of a jid that is not reserved is an error the client can see.
    assert call(client, "FAIL", {"jid": job["jid"], "message": "again"}).startswith("ERR ")


def test_scheduled_job_runs_when_due(client: faktory.Client) -> None:
    at = rfc3339_in(1.0)
    started = time.monotonic()
    assert client.queue("Later", args=[], jid="cdrx-sched-01", at=at)
    before = summary(info(client))
    assert before["scheduled"] == 1
    assert before["queues"] == {}

    job = None
    while job is None and time.monotonic() - started < 6:
        job = client.faktory.fetch(["default"])
    elapsed = time.monotonic() - started
    assert job is not None, "scheduled job never became fetchable"
    assert job["jid"] == "cdrx-sched-01"
    assert job["at"]
    assert elapsed >= 0.9, f"fetched {elapsed:.2f}s after push, before it was due"
    assert summary(info(client))["scheduled"] == 0
    assert call(client, "ACK", {"jid": job["jid"]}) == "OK"


def _fill_sets(client: faktory.Client) -> None:
    """3 scheduled jobs (MutA, MutA, MutB) and 3 retries (args needle, hay, hay)."""
    far = rfc3339_in(3600)
    assert client.queue("MutA", jid="cdrx-s-a1", at=far)
    assert client.queue("MutA", jid="cdrx-s-a2", at=far)
    assert client.queue("MutB", jid="cdrx-s-b1", at=far)
    for jid, arg in (("cdrx-r-1", "needle"), ("cdrx-r-2", "hay"), ("cdrx-r-3", "hay")):
        assert client.queue("Retry", args=[arg], jid=jid)
        job = client.faktory.fetch(["default"])
        assert job is not None and job["jid"] == jid
        assert call(client, "FAIL", {"jid": jid, "errtype": "E", "message": "m"}) == "OK"
    now = summary(info(client))
    assert (now["scheduled"], now["retries"], now["dead"], now["queues"]) == (3, 3, 0, {})


def test_mutate(client: faktory.Client) -> None:
    _fill_sets(client)

    def state() -> tuple[int, int, int, dict[str, int]]:
        now = summary(info(client))
        return now["scheduled"], now["retries"], now["dead"], now["queues"]

    # discard with a jobtype filter
    assert mutate(client, cmd="discard", target="scheduled", filter={"jobtype": "MutA"}) == "OK"
    assert state() == (1, 3, 0, {})
    # kill by jid: scheduled -> dead
    assert mutate(client, cmd="kill", target="scheduled", filter={"jids": ["cdrx-s-b1"]}) == "OK"
    assert state() == (0, 3, 1, {})
    # discard with a regexp (glob over the job JSON)
    assert mutate(client, cmd="discard", target="retries", filter={"regexp": "*needle*"}) == "OK"
    assert state() == (0, 2, 1, {})
    # requeue by jid: retries -> its queue
    assert mutate(client, cmd="requeue", target="retries", filter={"jids": ["cdrx-r-2"]}) == "OK"
    assert state() == (0, 1, 1, {"default": 1})
    job = client.faktory.fetch(["default"])
    assert job is not None and job["jid"] == "cdrx-r-2"
    assert job["failure"]["message"] == "m"
    assert call(client, "ACK", {"jid": "cdrx-r-2"}) == "OK"
    # kill from retries
    assert mutate(client, cmd="kill", target="retries", filter={"jobtype": "Retry"}) == "OK"
    assert state() == (0, 0, 2, {})
    # requeue from dead
    assert mutate(client, cmd="requeue", target="dead", filter={"jids": ["cdrx-s-b1"]}) == "OK"
    assert state() == (0, 0, 1, {"default": 1})
    # clear dead (filter ignored)
    assert mutate(client, cmd="clear", target="dead", filter={}) == "OK"
    assert state() == (0, 0, 0, {"default": 1})
    # clear on the other targets, with something in them
    assert client.queue("MutC", jid="cdrx-s-c1", at=rfc3339_in(3600))
    assert mutate(client, cmd="clear", target="scheduled") == "OK"
    # The facility's natural form: a dict, which it json.dumps()es with ", " and ": ".
    # Faktory splits MUTATE on spaces and rejects this; Werk accepts it (docs/protocol.md).
    assert call(client, "MUTATE", {"cmd": "clear", "target": "retries"}) == "OK"
    assert state() == (0, 0, 0, {"default": 1})


def test_pause_and_resume(client: faktory.Client) -> None:
    assert client.queue("Hi", jid="cdrx-high-1", queue="high")
    assert client.queue("Lo", jid="cdrx-low-01", queue="low")
    # cdrx has no queue-control API: raw QUEUE command through the client's own facility.
    assert call(client, "QUEUE", "PAUSE high") == "OK"

    # strict order would give "high" first; paused, it is skipped
    job = client.faktory.fetch(["high", "low"])
    assert job is not None and job["jid"] == "cdrx-low-01"
    assert call(client, "ACK", {"jid": job["jid"]}) == "OK"
    # a worker that only listens on the paused queue gets nothing (null after ~2 s)
    assert client.faktory.fetch(["high"]) is None
    assert summary(info(client))["queues"] == {"high": 1}

    assert call(client, "QUEUE", "RESUME high") == "OK"
    job = client.faktory.fetch(["high"])
    assert job is not None and job["jid"] == "cdrx-high-1"
    assert call(client, "ACK", {"jid": job["jid"]}) == "OK"


def test_password(werk_server_factory: Any) -> None:
    server = werk_server_factory(password="s3cret-pw")
    # cdrx sends no "v" and hashes once; the server must use one iteration for it.
    with faktory.Client(server.url) as good:
        assert good.queue("Secure", jid="cdrx-auth-01")
        assert summary(info(good))["queues"] == {"default": 1}

    bad = faktory.Client(f"tcp://:wrong-pw@{server.host}:{server.port}")
    with pytest.raises(FaktoryAuthenticationError):
        bad.connect()


def add_numbers(results: list[int], lock: threading.Lock, a: int, b: int) -> None:
    with lock:
        results.append(a + b)


def explode(reason: str) -> None:
    raise RuntimeError(reason)


def test_worker_loop(client: faktory.Client, werk_server: ServerProcess) -> None:
    results: list[int] = []
    lock = threading.Lock()
    previous_sigterm = signal.getsignal(signal.SIGTERM)
    try:
        # Worker() installs a SIGTERM handler, so it must be built in the main thread.
        worker = faktory.Worker(
            faktory=werk_server.url, queues=["default"], concurrency=4, use_threads=True
        )
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
    worker.send_heartbeat_every = 1  # exercise BEAT during the short run
    worker.register("add", lambda a, b: add_numbers(results, lock, a, b))
    worker.register("explode", explode)

    jobs = 8
    for i in range(jobs):
        assert client.queue("add", args=(i, i))
    assert client.queue("explode", args=["kaboom"], jid="cdrx-boom-01")

    def run() -> None:
        with contextlib.suppress(SystemExit):  # Worker.run() always ends with sys.exit(1)
            worker.run()

    thread = threading.Thread(target=run, name="cdrx-worker", daemon=True)
    thread.start()
    try:
        done = wait_for_info(
            lambda: info(client),
            lambda s: s["processed"] == jobs + 1 and s["working"] == 0,
            timeout=20,
        )
        assert done["queues"] == {}
        assert done["failures"] == 1
        assert done["retries"] == 1
        assert sorted(results) == [2 * i for i in range(jobs)]
        # the worker's wid is registered (it said HELLO with a wid and BEATs)
        assert info(client)["faktory"]["tasks"]["Workers"]["size"] >= 1
    finally:
        worker.disconnect(wait=5)
        thread.join(10)
    assert not thread.is_alive()
