"""Worker recycling (``--max-jobs``, ``--max-memory``): real ``werk worker`` processes
against a real server stop after the limit, lose and repeat no job, exit with
RECYCLE_STATUS, and are replaced at once under ``-p``."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.client.conftest import retries_size, wait_until
from tests.conftest import SQLITE_ONLY
from tests.helpers import ServerProcess
from werk.client import Client, Job, Worker
from werk.client.recycling import RECYCLE_STATUS

JOBS = textwrap.dedent(
    """
    import os
    import time
    from pathlib import Path

    KEPT = []

    def record(n, seconds=0):
        time.sleep(seconds)
        with open("ran.txt", "a") as ran:
            ran.write(f"{n} {os.getpid()}\\n")

    def hog(mib):
        KEPT.append(b"x" * (mib << 20))  # resident: every page is written
        record(f"hog{mib}")

    def resident():
        from werk.client.recycling import resident_kib
        Path("resident.txt").write_text(str(resident_kib()))

    JOBS = [record, hog, resident]
    """
)


def run_worker(tmp_path: Path, server: ServerProcess, *flags: str) -> subprocess.Popen[bytes]:
    (tmp_path / "jobs_module.py").write_text(JOBS)
    args = [sys.executable, "-m", "werk", "worker", "jobs_module:JOBS", "--url", server.url]
    return subprocess.Popen([*args, *flags], cwd=tmp_path, stderr=subprocess.PIPE)


def ran(tmp_path: Path) -> list[tuple[str, int]]:
    """The ``(argument, pid)`` of each job run so far, in order."""
    path = tmp_path / "ran.txt"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(n, int(pid)) for n, pid in (line.split() for line in lines)]


def faktory(client: Client) -> Any:
    return client.info()["faktory"]


@SQLITE_ONLY
def test_max_jobs_alone_runs_that_many_and_exits_to_be_replaced(
    tmp_path: Path, werk_server: ServerProcess, client: Client
) -> None:
    # Given 10 jobs and a worker with 10 slots, limited to 3 jobs
    client.push_bulk([Job("record", [n]) for n in range(10)])
    proc = run_worker(tmp_path, werk_server, "--max-jobs", "3", "-c", "10")
    # Then it runs exactly 3 (no FETCH goes out past the limit) and exits with the
    # recycle status, its jobs ACKed and the 7 others still queued
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == RECYCLE_STATUS, stderr.decode()
    assert "processed 3 jobs (--max-jobs 3): exiting to be replaced" in stderr.decode()
    assert sorted(n for n, _ in ran(tmp_path)) == ["0", "1", "2"]
    info = faktory(client)
    assert info["total_processed"] == 3 and info["total_failures"] == 0
    assert info["queues"] == {"default": 7}
    assert info["sets"]["working"] == 0 and retries_size(client) == 0


@SQLITE_ONLY
def test_max_jobs_under_a_supervisor_replaces_the_worker(
    tmp_path: Path, werk_server: ServerProcess, client: Client
) -> None:
    # Given -p 1 --max-jobs 3 and 10 jobs
    client.push_bulk([Job("record", [n]) for n in range(10)])
    proc = run_worker(tmp_path, werk_server, "-p", "1", "--max-jobs", "3", "-c", "2")
    # Then every job runs exactly once, by at least 4 worker processes in turn
    wait_until(lambda: len(ran(tmp_path)) >= 10, timeout=60)
    wait_until(lambda: faktory(client)["total_processed"] == 10)
    runs = ran(tmp_path)
    assert sorted(int(n) for n, _ in runs) == list(range(10))
    assert len({pid for _, pid in runs}) >= 4
    assert max(list(pid for _, pid in runs).count(pid) for _, pid in runs) <= 3
    # And the supervisor keeps running; SIGTERM stops it cleanly
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr.decode()
    assert stderr.count(b"exited to be replaced; worker process") >= 3
    assert b"starting another" not in stderr  # not a crash: no back-off
    assert faktory(client)["total_failures"] == 0 and retries_size(client) == 0


def resident_mib(tmp_path: Path, server: ServerProcess, client: Client) -> int:
    """The resident memory of a ``werk worker`` after a small job, in MiB."""
    client.push(Job("resident"))
    proc = run_worker(tmp_path, server, "-c", "1")
    wait_until(lambda: (tmp_path / "resident.txt").exists())
    wait_until(lambda: faktory(client)["total_processed"] == 1)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    return int((tmp_path / "resident.txt").read_text()) // 1024


@SQLITE_ONLY
def test_max_memory_recycles_after_the_job_that_grew_it(
    tmp_path: Path, werk_server: ServerProcess, client: Client
) -> None:
    # Given a worker limited to 30 MiB more than it uses after a small job
    limit = resident_mib(tmp_path, werk_server, client) + 30
    # When it runs a job that keeps 60 MiB, then others
    client.push_bulk([Job("record", ["small"]), Job("hog", [60]), Job("record", ["after"])])
    proc = run_worker(tmp_path, werk_server, "-c", "1", "--max-memory", str(limit))
    # Then it exits with the recycle status after that job, which was ACKed, not retried
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == RECYCLE_STATUS, stderr.decode()
    assert f"(--max-memory {limit}): exiting to be replaced" in stderr.decode()
    assert [n for n, _ in ran(tmp_path)] == ["small", "hog60"]
    info = faktory(client)
    assert info["total_processed"] == 3 and info["total_failures"] == 0
    assert info["queues"] == {"default": 1} and retries_size(client) == 0


@SQLITE_ONLY
def test_a_supervisor_stopped_while_a_worker_recycles_exits_0(
    tmp_path: Path, werk_server: ServerProcess, client: Client
) -> None:
    # Given -p 1 -c 2 and --max-memory reached by one job while another still runs
    limit = resident_mib(tmp_path, werk_server, client) + 30
    client.push_bulk([Job("record", ["slow", 4]), Job("hog", [60])])
    proc = run_worker(tmp_path, werk_server, "-p", "1", "-c", "2", "--max-memory", str(limit))
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if b"exiting to be replaced" in line:
            break
    # When the supervisor is stopped before that worker exited (with the recycle status)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=20)
    # Then it replaces nothing and counts that exit as a clean one
    assert proc.returncode == 0, b"".join(lines).decode() + stderr.decode()
    assert sorted(n for n, _ in ran(tmp_path)) == ["hog60", "slow"]
    assert b"exited to be replaced" not in stderr
    assert faktory(client)["queues"].get("default", 0) == 0


@SQLITE_ONLY
def test_a_memory_limit_below_a_fresh_worker_is_warned_of(
    tmp_path: Path, werk_server: ServerProcess, client: Client
) -> None:
    client.push(Job("record", ["one"]))
    proc = run_worker(tmp_path, werk_server, "--max-memory", "1")
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == RECYCLE_STATUS
    assert b"at start, over --max-memory 1: the worker will be replaced after every job" in stderr


def children(pid: int) -> list[int]:
    """The pids of ``pid``'s child processes (Linux)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


@SQLITE_ONLY
def test_a_supervisor_stopped_while_a_worker_starts_up_exits_0(
    tmp_path: Path, werk_server: ServerProcess
) -> None:
    # Given -p 1, stopped as soon as its worker process exists (still starting Python:
    # a replacement after a recycle is in this state half the time),
    proc = run_worker(tmp_path, werk_server, "-p", "1")
    deadline = time.monotonic() + 20
    while not children(proc.pid):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    # Then the worker stops gracefully once it can, not killed by the forwarded signal
    assert proc.returncode == 0, stderr.decode()
    assert b"SIGTERM: stopping gracefully" in stderr


@SQLITE_ONLY
async def test_a_worker_in_code_stops_at_max_jobs_and_says_why(
    werk_server: ServerProcess, start_worker: Callable[[Worker], asyncio.Task[None]]
) -> None:
    # Given Worker(max_jobs=2) with 5 slots and 4 jobs pushed
    with Client(werk_server.url) as client:
        client.push_bulk([Job("work", [n]) for n in range(4)])
        done: list[int] = []
        worker = Worker(werk_server.url, concurrency=5, max_jobs=2)

        @worker.register
        def work(n: int) -> None:
            done.append(n)

        # Then run_async returns by itself after 2 jobs, and recycled says why
        await asyncio.wait_for(start_worker(worker), 30)
        assert len(done) == 2 and worker.recycled == "processed 2 jobs (--max-jobs 2)"
        info = client.info()["faktory"]
        assert info["total_processed"] == 2 and info["queues"] == {"default": 2}


@pytest.mark.parametrize("limits", [{"max_jobs": 0}, {"max_memory": -1}])
def test_limits_below_one_are_refused(limits: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=f"{next(iter(limits))} must be at least 1"):
        Worker(**limits)
