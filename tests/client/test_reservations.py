"""Long jobs keep their reservation: executed exactly once and ACKed, never run twice.

The default suite runs the real scenario with small numbers: a server whose minimum
``reserve_for`` is lowered by the test-only ``WERK_TEST_MIN_RESERVE_FOR``, and a job running
well past its reservation. The literal case (90 s with ``reserve_for=60`` on a server with
Faktory's 60 s minimum) runs behind the ``slow`` marker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

import pytest

from tests.client.conftest import async_wait_until, wait_until
from tests.client.test_worker import Start
from tests.helpers import ServerProcess
from werk.client import Client, Job, Worker
from werk.client.reconnect import Connector
from werk.client.reservations import Lease, ReservationKeeper
from werk.errors import CommandError
from werk.job import TEST_MIN_RESERVE_FOR_ENV, format_time
from werk.server.tasks import RESTART_GRACE_ENV

Factory = Callable[..., ServerProcess]


@pytest.fixture
def short_reservations(werk_server_factory: Factory) -> ServerProcess:
    """A server that accepts ``reserve_for`` down to 1 s (test-only setting)."""
    return werk_server_factory(env={TEST_MIN_RESERVE_FOR_ENV: "1"})


def test_an_unrenewed_reservation_expires(short_reservations: ServerProcess) -> None:
    # The premise: without renewal the server takes the job back as a failure with errtype
    # ReservationExpired, and the job's retry decides, as for a FAIL (Faktory's rule;
    # docs/explanation/crashes.md, migrating.md): the retry set with retries left,
    # discarded with retry 0, the dead set with a negative retry.
    with Client(short_reservations.url) as client:
        again = client.push(Job("Long", reserve_for=1))
        gone = client.push(Job("Long", reserve_for=1, retry=0, result_ttl=60))
        dead = client.push(Job("Long", reserve_for=1, retry=-1))
        fetched = [client.fetch(), client.fetch(), client.fetch()]  # then the worker dies
        assert [job["jid"] for job in fetched if job] == [again, gone, dead]
        wait_until(lambda: client.info()["faktory"]["total_failures"] == 3, timeout=10)
        sets = client.info()["faktory"]["sets"]
        assert (sets["working"], sets["retries"], sets["dead"]) == (0, 1, 1)
        [retrying] = client.jobs("retries").entries
        [died] = client.jobs("dead").entries
        assert (retrying.jid, died.jid) == (again, dead)
        for entry in (retrying, died):
            assert entry.failure is not None
            assert entry.failure["errtype"] == "ReservationExpired"
            assert entry.failure["message"] == "Faktory job reservation expired"
        discarded = client.job_state(gone)
        assert discarded.state == "failed" and discarded.error is not None
        assert discarded.error["errtype"] == "ReservationExpired"


async def run_long_job(
    server: ServerProcess, start_worker: Start, seconds: float, reserve_for: int
) -> tuple[list[str], Worker]:
    worker = Worker(server.url, concurrency=2)
    runs: list[str] = []

    @worker.register
    def long_job(name: str) -> None:
        runs.append(name)
        time.sleep(seconds)

    with Client(server.url) as client:
        client.push(Job("long_job", ["report"], reserve_for=reserve_for))
        start_worker(worker)
        await async_wait_until(
            lambda: client.info()["faktory"]["total_processed"] == 1, timeout=seconds + 15
        )
        info = client.info()["faktory"]
    assert runs == ["report"]  # executed exactly once ...
    assert info["total_failures"] == 0 and info["sets"]["working"] == 0  # ... and ACKed
    return runs, worker


async def test_a_job_longer_than_its_reservation_runs_once(
    short_reservations: ServerProcess, start_worker: Start
) -> None:
    _, worker = await run_long_job(short_reservations, start_worker, seconds=5, reserve_for=2)
    assert worker.keeper is not None and worker.keeper.renewals >= 3


def test_a_reservation_that_expired_while_no_server_ran_gets_a_grace(
    werk_server_factory: Factory,
) -> None:
    # A worker holds a job reserved for 1 s; the server is away while the reservation runs
    # out, so the worker cannot renew it. The server used to reap it about 1 s after its
    # start, before the worker's renewal got through: the job ran to its end and was ACKed,
    # yet stayed in Retries (ReservationExpired) and ran again. A restarted server now
    # leaves the reservations made before its start alone for a grace (30 s; 5 s here).
    server = werk_server_factory(env={TEST_MIN_RESERVE_FOR_ENV: "1", RESTART_GRACE_ENV: "5"})
    with Client(server.url) as client:
        jid = client.push(Job("Long", reserve_for=1, retry=2))
        job = client.fetch()
        assert job is not None and job["jid"] == jid
        server.stop()
        time.sleep(1.5)
        server.start()
        time.sleep(2.5)  # the reaper runs every second
        assert client.info()["faktory"]["sets"]["working"] == 1
        # the worker's renewal, late
        client.track_set(jid, reserve_until=format_time(time.time() + 60))
        time.sleep(4)  # past the grace: a renewed reservation stays
        client.ack(jid)
        info = client.info()["faktory"]
        assert info["total_failures"] == 0 and info["sets"]["retries"] == 0
        # A job left alone is reaped once the grace is over.
        lost = client.push(Job("Long", reserve_for=1, retry=2))
        assert client.fetch() is not None
        server.stop()
        server.start()
        wait_until(lambda: client.info()["faktory"]["sets"]["retries"] == 1, timeout=15)
        assert client.jobs("retries").entries[0].jid == lost


async def test_a_worker_says_when_its_job_lost_its_reservation_before_the_ack(
    werk_server: ServerProcess, start_worker: Start, caplog: pytest.LogCaptureFixture
) -> None:
    # The server answers +OK to the ACK of a job whose reservation is gone (Faktory's
    # rule), so the worker used to log "done" and nothing else while the job was failed
    # (ReservationExpired) and ran again. Its ACK now asks to know, and it warns.
    worker = Worker(werk_server.url, concurrency=2)
    started, release = threading.Event(), threading.Event()

    @worker.register
    def held() -> None:
        started.set()
        release.wait(10)

    caplog.set_level(logging.INFO, logger="werk.worker")
    with Client(werk_server.url) as client:
        jid = client.push(Job("held", retry=2))
        start_worker(worker)
        await asyncio.to_thread(started.wait, 10)
        # what the reaper does to an expired reservation, done from outside
        client.fail(jid, "ReservationExpired", "Faktory job reservation expired")
        release.set()
        await async_wait_until(
            lambda: any("no longer held its reservation" in r.getMessage() for r in caplog.records)
        )
    [line] = [r for r in caplog.records if "no longer held" in r.getMessage()]
    assert line.levelno == logging.WARNING and line.getMessage().startswith(f"job {jid}: done")
    assert "runs again if it has retries left" in line.getMessage()


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_a_90s_job_with_reserve_for_60_runs_once(
    werk_server: ServerProcess, start_worker: Start
) -> None:
    _, worker = await run_long_job(werk_server, start_worker, seconds=90, reserve_for=60)
    assert worker.keeper is not None and worker.keeper.renewals >= 2


def test_a_server_without_track_gets_one_warning_and_a_line_per_expired_job(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Faktory's open-source server answers TRACK with an error: the keeper stops asking and
    # logs, with its jid, each job that outlives its reservation.
    keeper = ReservationKeeper(Connector(Worker("tcp://localhost:1")), list)
    lease = Lease("jid-1", "Export", 60.0, expires=100.0, renew_at=130.0)
    with caplog.at_level(logging.WARNING, "werk.worker"):
        keeper._settle(lease, CommandError("ERR Unknown command TRACK"), now=130.0)
        keeper._watch_expiry(lease, now=170.0)
        keeper._watch_expiry(lease, now=200.0)
    assert not keeper.supported
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2 and "does not support TRACK SET" in messages[0]
    assert "job jid-1 Export: still running after its reservation of 60s expired" in messages[1]


def test_the_keeper_finds_running_jobs_and_dates_them_from_its_previous_look() -> None:
    # The worker does not tell the keeper about each job; the keeper reads the running jobs
    # every POLL. A job first seen at one look started after the previous one, so its lease
    # (renewal at half of reserve_for) counts from that previous look.
    running: list[dict[str, object]] = [{"jid": "a", "jobtype": "Export", "reserve_for": 60}]
    keeper = ReservationKeeper(Connector(Worker("tcp://localhost:1")), lambda: running)
    keeper.look(now=100.5, previous=100.0)
    lease = keeper.leases["a"]
    assert (lease.expires, lease.renew_at, lease.jobtype) == (160.0, 130.0, "Export")
    running.append({"jid": "b", "jobtype": "Other"})
    keeper.look(now=101.0, previous=100.5)
    assert keeper.leases["a"] is lease  # the same lease while the job runs
    assert keeper.leases["b"].renew_at == 100.5 + 900
    running.clear()
    keeper.look(now=101.5, previous=101.0)
    assert keeper.leases == {}  # finished jobs are forgotten
