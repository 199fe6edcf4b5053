"""Queue throttles: at most N jobs of a queue in flight, released at ACK, reclaimed."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.features.conftest import Clock
from tests.helpers import Peer, ServerProcess, push_line
from werk.manager.manager import Manager
from werk.manager.throttles import ThrottleConfigError, ThrottleMiddleware, parse_throttles
from werk.protocol.resp import Simple
from werk.storage.base import Store

OK = Simple("OK")
THROTTLES = """
[throttles]
tq = { concurrency = 2, timeout = 30 }
short = { concurrency = 1, timeout = 1 }
wq = { worker = 1, timeout = 30 }
"""


@pytest.fixture
def throttled(tmp_path: Path, werk_server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    """A server whose conf.d sets throttles on the queues tq, short and wq."""
    confd = tmp_path / "conf" / "conf.d"
    confd.mkdir(parents=True)
    (confd / "throttles.toml").write_text(THROTTLES)
    return werk_server_factory(extra_args=["-c", str(tmp_path / "conf")])


def worker(server: ServerProcess, wid: str) -> Peer:
    peer = Peer(server.host, server.port)
    assert peer.hello(wid=wid, hostname="h", pid=1, labels=[]) == OK
    return peer


def push(server: ServerProcess, queue: str, count: int) -> None:
    producer = Peer(server.host, server.port)
    assert producer.hello() == OK
    for i in range(count):
        assert producer.call(push_line(f"{queue}-job-{i:04d}", queue=queue)) == OK


def fetch(peer: Peer, queue: str) -> dict[str, Any] | None:
    reply = peer.call(f"FETCH {queue}")
    return None if reply is None else json.loads(reply)  # type: ignore[arg-type]


def ack(peer: Peer, job: dict[str, Any]) -> None:
    assert peer.call(f'ACK {{"jid":"{job["jid"]}"}}') == OK


def test_four_workers_never_hold_more_than_two(throttled: ServerProcess) -> None:
    # Given 12 jobs on a queue throttled to 2 and four workers fetching it
    push(throttled, "tq", 12)
    holding = peak = done = 0
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(index: int) -> None:
        nonlocal holding, peak, done
        try:
            peer = worker(throttled, f"w{index}")
            deadline = time.time() + 30
            while done < 12 and time.time() < deadline:
                job = fetch(peer, "tq")
                if job is None:
                    continue
                with lock:
                    holding += 1
                    peak = max(peak, holding)
                time.sleep(0.05)
                with lock:
                    holding -= 1
                    done += 1
                ack(peer, job)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(40)
    # Then every job ran, never more than two at once
    assert not errors, errors
    assert done == 12
    assert peak == 2


def test_unit_is_released_at_ack_and_wakes_a_waiting_fetch(throttled: ServerProcess) -> None:
    push(throttled, "tq", 3)
    first, second, third = (worker(throttled, f"w{i}") for i in range(3))
    job = fetch(first, "tq")
    assert job is not None and fetch(second, "tq") is not None
    # The third worker blocks: the throttle is full
    started = time.monotonic()
    third.send("FETCH tq\r\n")
    time.sleep(0.3)
    ack(first, job)
    got = third.reply()
    assert got is not None and time.monotonic() - started < 1.5


def test_unit_is_released_at_fail(throttled: ServerProcess) -> None:
    push(throttled, "short", 2)
    peer = worker(throttled, "w1")
    job = fetch(peer, "short")
    assert job is not None
    assert fetch(peer, "short") is None  # full (after the 2 s FETCH wait)
    fail = {"jid": job["jid"], "errtype": "E", "message": "boom"}
    assert peer.call("FAIL " + json.dumps(fail)) == OK
    assert fetch(peer, "short") is not None


def test_unit_is_reclaimed_after_the_timeout(throttled: ServerProcess) -> None:
    # "short" allows 1 job with a 1 s timeout: a worker that never ACKs loses the unit
    push(throttled, "short", 2)
    peer = worker(throttled, "w1")
    assert fetch(peer, "short") is not None
    started = time.monotonic()
    # A FETCH of a full queue answers nil after its 2 s wait; the next one gets the job
    while fetch(peer, "short") is None:
        assert time.monotonic() - started < 5
    assert time.monotonic() - started >= 1.0


def test_per_worker_throttle(throttled: ServerProcess) -> None:
    push(throttled, "wq", 3)
    a, b = worker(throttled, "wa"), worker(throttled, "wb")
    job = fetch(a, "wq")
    assert job is not None
    assert fetch(a, "wq") is None  # wa holds its one
    assert fetch(b, "wq") is not None  # wb has its own
    ack(a, job)
    assert fetch(a, "wq") is not None


def test_other_queues_are_not_throttled(throttled: ServerProcess) -> None:
    push(throttled, "free", 3)
    peer = worker(throttled, "w1")
    assert all(fetch(peer, "free") is not None for _ in range(3))


# -- in process, on real stores ------------------------------------------------------------


async def test_race_loser_hands_the_job_back(store: Store) -> None:
    # Given a throttle whose only unit another server just took
    clock = Clock(1_800_000_000.0)
    throttle = ThrottleMiddleware(store, {"throttles": {"tq": {"concurrency": 1}}})
    manager = Manager(store, clock=clock)
    for jid in ("job-aaaaaaaa", "job-bbbbbbbb"):
        await manager.push({"jid": jid, "jobtype": "T", "args": [], "queue": "tq"})
    reservation = await store.fetch(["tq"], clock(), "w1")
    assert reservation is not None
    taken = await store.limit_acquire("throttle:tq", "concurrent", 1, 60, "elsewhere", clock())
    assert taken.acquired
    # When this server's middleware sees the reserved job
    kept = await throttle.fetched(reservation, clock())
    # Then it withholds it and the job is back in its queue, unreserved
    assert kept is False and throttle.handed_back == 1
    assert await store.working_size() == 0
    assert (await store.queue_sizes())["tq"] == 2
    assert await store.set_size("scheduled") == 0
    assert await throttle.fetch(["tq", "other"], "w1", clock()) == ["other"]
    rows = await throttle.status([], clock())
    assert rows == [
        {
            "queue": "tq",
            "kind": "concurrency",
            "description": "1 concurrent",
            "limit": 1,
            "timeout": 60.0,
            "taken": 1,
            "free": 0,
        }
    ]


async def test_expired_reservation_releases_the_unit(store: Store) -> None:
    clock = Clock(1_800_000_000.0)
    throttle = ThrottleMiddleware(store, {"throttles": {"tq": {"concurrency": 1, "timeout": 600}}})
    manager = Manager(store, clock=clock, middleware=[throttle])
    job = {"jid": "job-aaaaaaaa", "jobtype": "T", "args": [], "queue": "tq", "reserve_for": 60}
    await manager.push(job)
    assert await manager.fetch(["tq"], "w1", timeout=0) is not None
    assert await store.limit_status("throttle:tq", clock()) == 1
    clock.now += 61
    assert len(await manager.reap_reservations()) == 1
    assert await store.limit_status("throttle:tq", clock()) == 0


async def test_per_worker_status(store: Store) -> None:
    clock = Clock(1_800_000_000.0)
    throttle = ThrottleMiddleware(store, {"throttles": {"wq": {"worker": 2}}})
    manager = Manager(store, clock=clock, middleware=[throttle])
    for i in range(3):
        await manager.push({"jid": f"job-{i:08d}", "jobtype": "T", "args": [], "queue": "wq"})
    assert await manager.fetch(["wq"], "wa", timeout=0) is not None
    assert await manager.fetch(["wq"], "wa", timeout=0) is not None
    assert await manager.fetch(["wq"], "wa", timeout=0) is None
    assert await manager.fetch(["wq"], "wb", timeout=0) is not None
    (row,) = await throttle.status(["wa", "wb"], clock())
    assert (row["description"], row["taken"], row["free"]) == ("2 per worker", 3, 0)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"q": {"concurrency": 0}}, "throttle for queue 'q': concurrency must be a positive"),
        ({"q": {"worker": "2"}}, "worker must be a positive integer"),
        ({"q": {"concurrency": 1, "worker": 1}}, "needs exactly one of concurrency or worker"),
        ({"q": {"timeout": 5}}, "needs exactly one of concurrency or worker"),
        ({"q": {"concurrency": 1, "timeout": 0}}, "timeout must be a number of seconds"),
        (
            {"q": {"concurrency": 1, "timeout": float("nan")}},
            "timeout must be a number of seconds, 0.001 to 31,536,000, not nan",
        ),
        ({"q": {"concurrency": 1, "timeout": float("inf")}}, "not inf"),
        ({"q": {"concurrency": 2**31}}, "concurrency must be a positive integer up to 2147483647"),
        ({"q": {"concurrency": 1, "limit": 3}}, "unknown keys: limit"),
        ({"q": 3}, "must be a table"),
    ],
)
def test_bad_throttles(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ThrottleConfigError, match=message):
        parse_throttles({"throttles": table})


def test_good_throttles() -> None:
    throttles = parse_throttles({"throttles": {"a": {"concurrency": 3}, "b": {"worker": 1}}})
    assert throttles["a"].timeout == 60.0 and not throttles["a"].per_worker
    assert throttles["b"].limiter("w9") == "throttle:b:worker:w9"
