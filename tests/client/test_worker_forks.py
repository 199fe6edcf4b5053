"""Jobs that fork (``multiprocessing.Pool``, ``os.fork``) under a real ``werk worker``: the
children's signals are theirs, the worker's are its own."""

from __future__ import annotations

import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.client.conftest import start_cli_worker, wait_until
from tests.client.test_worker_cli import children_of
from tests.conftest import SQLITE_ONLY
from tests.helpers import ServerProcess
from werk.client import Client, Job

JOBS = textwrap.dedent(
    """
    import multiprocessing, os, signal, time
    from werk.client import Worker

    worker = Worker(concurrency=2)

    @worker.register
    def pooled(record):
        # Pool's exit calls terminate(): SIGTERM to each of its processes
        with multiprocessing.get_context("fork").Pool(2) as pool:
            pids = set(pool.map(pid, range(8)))
        with open(record, "a") as out:
            out.write("".join(f"{p}\\n" for p in pids))

    def pid(_):
        time.sleep(0.05)
        return os.getpid()

    @worker.register
    def forked(record):
        # A bare child: the system's default for SIGTERM ends it
        child = os.fork()
        if child == 0:
            time.sleep(30)
            os._exit(0)
        time.sleep(0.2)
        os.kill(child, signal.SIGTERM)
        _, status = os.waitpid(child, 0)
        with open(record, "a") as out:
            out.write(f"status {status}\\n")

    @worker.register
    def ok():
        pass
    """
)


def processed(client: Client) -> int:
    return int(client.info()["faktory"]["total_processed"])


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@SQLITE_ONLY
@pytest.mark.parametrize("flags", [[], ["-p", "2"]], ids=["worker", "supervised"])
def test_a_job_forking_children_leaves_the_worker_running(
    tmp_path: Path, werk_server: ServerProcess, client: Client, flags: list[str]
) -> None:
    # Given a worker running jobs that fork, among others
    pools, bare = tmp_path / "pools.txt", tmp_path / "bare.txt"
    proc = start_cli_worker(
        tmp_path, werk_server, JOBS, "fork_jobs:worker", *flags, stderr=subprocess.PIPE
    )
    try:
        for _ in range(3):
            client.push_bulk(
                [Job("pooled", [str(pools)]), Job("ok", []), Job("forked", [str(bare)])]
            )
        # When they ran: every job is done, none handed back or failed
        wait_until(lambda: processed(client) >= 9 or proc.poll() is not None, timeout=30)
        # Then the worker (and under -p every worker process) still runs
        assert proc.poll() is None
        assert client.info()["faktory"]["total_failures"] == 0
        if flags:
            assert len(children_of(proc.pid)) == 2
        # And the pools' processes ended at terminate(), a bare child at its SIGTERM
        pids = [int(line) for line in pools.read_text().split()]
        assert len(pids) >= 3
        wait_until(lambda: not any(alive(pid) for pid in pids), timeout=5)
        assert bare.read_text().split("\n")[:3] == [f"status {signal.SIGTERM}"] * 3
        # And another job still runs
        client.push(Job("ok", []))
        wait_until(lambda: processed(client) >= 10)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    out = stderr.decode()
    assert proc.returncode == 0, out
    # And the only stop it logged is the one sent at the end
    assert out.count("SIGTERM: stopping gracefully") == (2 if flags else 1), out
    assert "second SIGTERM" not in out
