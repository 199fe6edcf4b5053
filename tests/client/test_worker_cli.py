"""``werk worker`` as a real subprocess: SIGTERM finishes running jobs and loses none."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.client.conftest import retries_size, wait_until
from tests.conftest import SQLITE_ONLY
from tests.helpers import ServerProcess
from werk.client import Client, Job

JOBS = textwrap.dedent(
    """
    import time
    from werk.client import Worker

    worker = Worker(concurrency=2)

    @worker.register
    def slow(seconds):
        time.sleep(seconds)

    registry = {"slow": slow}

    def hello():
        print("hello ran")

    NOTHING = 42
    """
)


def start_worker(
    tmp_path: Path, server: ServerProcess, target: str, *flags: str
) -> subprocess.Popen[bytes]:
    (tmp_path / "jobs_module.py").write_text(JOBS)
    args = [sys.executable, "-m", "werk", "worker", f"jobs_module:{target}", "--url", server.url]
    return subprocess.Popen([*args, *flags], cwd=tmp_path, stderr=subprocess.PIPE)


def busy(client: Client) -> int:
    return int(client.info()["faktory"]["tasks"]["Busy"]["size"])


def test_sigterm_finishes_running_jobs(
    tmp_path: Path, werk_server: ServerProcess, client: Client
) -> None:
    client.push_bulk([Job("slow", [1.5]) for _ in range(5)])
    proc = start_worker(
        tmp_path,
        werk_server,
        "worker",
        "-c",
        "5",
        "-q",
        "default",
        "--shutdown-timeout",
        "10",
        "--label",
        "cli",
    )
    wait_until(lambda: busy(client) == 5)
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 0, stderr.decode()
    assert time.monotonic() - began < 5
    info = client.info()["faktory"]
    assert info["total_processed"] == 5 and info["total_failures"] == 0
    assert info["queues"].get("default", 0) == 0 and info["sets"]["working"] == 0


def test_sigterm_hands_back_jobs_at_the_timeout(
    tmp_path: Path, werk_server: ServerProcess, client: Client
) -> None:
    client.push_bulk([Job("slow", [30]) for _ in range(3)])
    proc = start_worker(tmp_path, werk_server, "registry", "-c", "3", "--shutdown-timeout", "0.5")
    wait_until(lambda: busy(client) == 3)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 0, stderr.decode()
    # every unfinished job is back in its queue, using no retry
    wait_until(lambda: client.info()["faktory"]["queues"].get("default") == 3)
    info = client.info()["faktory"]
    assert info["sets"]["working"] == 0 and retries_size(client) == 0


@SQLITE_ONLY
def test_sigterm_waits_for_the_report_of_a_job_that_ended_while_the_server_was_away(
    tmp_path: Path, werk_server: ServerProcess, client: Client
) -> None:
    # Given a job that ends while the server is away, so its ACK waits to be sent
    jid = client.push(Job("slow", [1.5]))
    proc = start_worker(tmp_path, werk_server, "registry", "-c", "1", "--shutdown-timeout", "20")
    wait_until(lambda: busy(client) == 1)
    werk_server.stop()  # not kill(): a FETCH may reply before its reservation is committed
    time.sleep(2)
    # When the worker is told to stop, and the server comes back within its shutdown timeout
    proc.send_signal(signal.SIGTERM)
    werk_server.start()
    # Then the ACK is delivered before the worker exits (it was given up at once): the job
    # is done, not left reserved to run again
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr.decode()
    assert b"could not send" not in stderr and f"job {jid} slow: done".encode() in stderr
    with Client(werk_server.url) as again:
        info = again.info()["faktory"]
        assert info["sets"]["working"] == 0 and info["queues"].get("default", 0) == 0


@SQLITE_ONLY
def test_bad_target_exits_2(tmp_path: Path, werk_server: ServerProcess) -> None:
    proc = start_worker(tmp_path, werk_server, "missing")
    _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 2 and b"cannot load" in stderr


@SQLITE_ONLY
def test_a_plain_function_is_a_target_and_other_things_are_named(
    tmp_path: Path, werk_server: ServerProcess, client: Client
) -> None:
    client.push(Job("hello"))
    proc = start_worker(tmp_path, werk_server, "hello")
    wait_until(lambda: client.info()["faktory"]["total_processed"] == 1)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 0 and b"jobtypes hello" in stderr, stderr.decode()
    proc = start_worker(tmp_path, werk_server, "NOTHING")
    _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 2
    assert b"cannot load jobs_module:NOTHING: it is an int; expected a Worker" in stderr
    assert b"a {jobtype: function} mapping, or a list of functions and tasks" in stderr


def test_wrong_password_exits_1(
    tmp_path: Path, werk_server_factory: Callable[..., ServerProcess]
) -> None:
    server = werk_server_factory(password="right")
    (tmp_path / "jobs_module.py").write_text(JOBS)
    url = f"tcp://:wrong@{server.host}:{server.port}"
    args = [sys.executable, "-m", "werk", "worker", "jobs_module:worker", "--url", url]
    proc = subprocess.run(args, cwd=tmp_path, capture_output=True, timeout=30)
    assert proc.returncode == 1
    lines = proc.stderr.decode().splitlines()
    refused = f"the server tcp://:***@{server.host}:{server.port} refused the password:"
    first = next(i for i, line in enumerate(lines) if refused in line)
    assert "Invalid password" in lines[first] and "stopping" in lines[first + 1]
    # The heartbeat's own connection is refused too: not a BEAT to register again.
    assert not [line for line in lines if "BEAT refused" in line]


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["-c", "0"], "argument -c/--concurrency: must be a whole number of 1 or more, not '0'"),
        (["-c", "-3"], "argument -c/--concurrency: must be a whole number of 1 or more"),
        (["-q", "bad name"], "argument -q/--queue: queue name 'bad name': queue names must"),
        (["-q", "mail,x"], "argument -q/--queue: queue weight must be a whole number"),
        (["-q", ",3"], "argument -q/--queue: queue name ''"),
        (["--shutdown-timeout", "nan"], "argument --shutdown-timeout: must be a number"),
        (["--url", "tcp://localhost:70000"], "argument --url: invalid port"),
        *(
            ([flag, bad], f"argument {flag}: must be a whole number of 1 or more, not '{bad}'")
            for flag in ("--max-jobs", "--max-memory")
            for bad in ("0", "-5", "1e3", "lots")
        ),
    ],
)
def test_bad_options_blame_the_option_and_run_nothing(
    tmp_path: Path, werk_server: ServerProcess, client: Client, flags: list[str], message: str
) -> None:
    # The findings: -c 0 became 10, -c -3 ran no job, -q "bad name" fetched from "name",
    # and -q mail,x said "cannot load jobs:tasks: invalid literal for int()".
    client.push(Job("hello", queue="name"))
    proc = start_worker(tmp_path, werk_server, "hello", *flags)
    _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 2, stderr.decode()
    assert message in stderr.decode() and b"cannot load" not in stderr
    assert client.info()["faktory"]["total_processed"] == 0


def children_of(pid: int) -> list[int]:
    """The live child processes of ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


@SQLITE_ONLY
def test_processes_run_workers_and_replace_one_that_dies(
    tmp_path: Path, werk_server: ServerProcess, client: Client
) -> None:
    # Given werk worker -p 2 -c 2 and four slow jobs: all four run at once, so both
    # worker processes fetch
    client.push_bulk([Job("slow", [3]) for _ in range(4)])
    proc = start_worker(tmp_path, werk_server, "registry", "-p", "2", "-c", "2")
    wait_until(lambda: busy(client) == 4)
    workers = wait_until(lambda: len(children_of(proc.pid)) == 2 and children_of(proc.pid))
    # When one worker process is killed, Then another takes its place and fetches
    os.kill(workers[0], signal.SIGKILL)
    wait_until(lambda: len(set(children_of(proc.pid)) - set(workers)) == 1)
    client.push_bulk([Job("slow", [0.1]) for _ in range(2)])
    wait_until(lambda: client.info()["faktory"]["queues"].get("default", 0) == 0)
    # And SIGTERM stops both gracefully: the supervisor exits 0 and leaves no process
    survivors = children_of(proc.pid)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr.decode()
    assert b"starting another" in stderr
    assert not [pid for pid in survivors if Path(f"/proc/{pid}").exists()]


@SQLITE_ONLY
def test_processes_stop_when_a_worker_meets_an_error_it_cannot_retry(
    tmp_path: Path, werk_server_factory: Callable[..., ServerProcess]
) -> None:
    # Given -p 2 and a wrong password: each worker exits 1, as werk worker alone does
    server = werk_server_factory(password="right")
    (tmp_path / "jobs_module.py").write_text(JOBS)
    url = f"tcp://:wrong@{server.host}:{server.port}"
    args = [sys.executable, "-m", "werk", "worker", "jobs_module:worker", "-p", "2"]
    started = time.monotonic()
    proc = subprocess.run([*args, "--url", url], cwd=tmp_path, capture_output=True, timeout=30)
    # Then the supervisor does not restart them for ever: it stops and exits 1
    stderr = proc.stderr.decode()
    assert proc.returncode == 1, stderr
    assert "exited with status 1 (an error it cannot retry" in stderr
    assert "starting another" not in stderr
    assert time.monotonic() - started < 20


def test_a_supervised_worker_gets_the_same_options() -> None:
    """``--processes`` starts copies of the command: every other option reaches them."""
    from werk.cli.main import build_parser
    from werk.cli.supervisor import child_argv

    given = ["worker", "m:a", "-q", "a,2", "-q", "b", "-c", "3", "--url", "tcp://x:1"]
    given += ["--label", "l1", "--label", "l2", "--shutdown-timeout", "2.5", "-l", "debug"]
    given += ["--log-format", "json", "-p", "4", "--max-jobs", "100", "--max-memory", "512"]
    parser = build_parser()
    parsed = parser.parse_args(given)
    again = parser.parse_args(["worker", *child_argv(parsed)])
    assert {**vars(again), "processes": 4} == vars(parsed)
    assert again.processes is None  # the child is a worker, not another supervisor
    defaults = parser.parse_args(["worker", "m:a"])
    assert vars(parser.parse_args(["worker", *child_argv(defaults)])) == vars(defaults)
