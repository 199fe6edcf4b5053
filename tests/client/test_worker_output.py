"""What ``werk worker`` tells its operator: job lines, failures with tracebacks, outages,
a second Ctrl-C that stops at once; and that the library leaves logging to its user."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from tests.client.conftest import wait_until
from tests.conftest import SQLITE_ONLY
from tests.helpers import ServerProcess
from werk.client import Client, Job

JOBS = textwrap.dedent(
    """
    import time
    from werk.client import Worker

    worker = Worker(concurrency=2, heartbeat_interval=1)

    @worker.register
    def ok(n):
        pass

    @worker.register
    def boom(n):
        raise ValueError(f"bad input {n}")

    @worker.register
    def slow(seconds):
        time.sleep(seconds)
    """
)


def run_worker(tmp_path: Path, server: ServerProcess, *flags: str) -> subprocess.Popen[str]:
    (tmp_path / "out_jobs.py").write_text(JOBS)
    args = [sys.executable, "-m", "werk", "worker", "out_jobs:worker", "--url", server.url]
    return subprocess.Popen(
        [*args, *flags], cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    return stderr


def processed(client: Client) -> int:
    return int(client.info()["faktory"]["total_processed"])


@SQLITE_ONLY
def test_failures_show_exception_and_traceback(
    tmp_path: Path, werk_server: ServerProcess, client: Client
) -> None:
    ok = client.push(Job("ok", [1]))
    bad = client.push(Job("boom", [7], retry=0))
    lost = client.push(Job("Nope", [], retry=0))
    proc = run_worker(tmp_path, werk_server, "-l", "debug")
    wait_until(lambda: processed(client) >= 3)
    out = stop(proc)
    assert "starting: server tcp://127.0.0.1:" in out
    assert "queues default, concurrency 2" in out and "jobtypes boom, ok, slow" in out
    assert f"job {ok} ok: start" in out and f"job {ok} ok: done in " in out
    assert f"job {bad} boom: failed after" in out and "ValueError: bad input 7" in out
    assert "Traceback (most recent call last)" in out and 'out_jobs.py", line' in out
    assert (
        f"job {lost} Nope: no function registered for jobtype 'Nope' (from queue 'default';"
        " this worker runs boom, ok, slow): push it to a queue that only workers running it"
        " fetch"
    ) in out
    assert "BEAT refused" not in out and "stopped" in out


@SQLITE_ONLY
def test_json_lines_carry_jid_and_jobtype(
    tmp_path: Path, werk_server: ServerProcess, client: Client
) -> None:
    bad = client.push(Job("boom", [1], retry=0))
    proc = run_worker(tmp_path, werk_server, "--log-format", "json")
    wait_until(lambda: processed(client) >= 1)
    lines = [json.loads(line) for line in stop(proc).splitlines() if line.startswith("{")]
    failed = [line for line in lines if line.get("jid") == bad]
    assert failed and failed[0]["jobtype"] == "boom" and failed[0]["level"] == "warning"
    assert "ValueError: bad input 1" in failed[0]["exc"]


@SQLITE_ONLY
def test_one_warning_per_outage_and_a_reconnected_line(
    tmp_path: Path, werk_server: ServerProcess, client: Client
) -> None:
    proc = run_worker(tmp_path, werk_server, "-c", "10")
    client.push(Job("ok", [1]))
    wait_until(lambda: processed(client) >= 1)
    werk_server.kill()
    time.sleep(2.0)
    werk_server.start()
    client.push(Job("ok", [2]))
    wait_until(lambda: processed(client) >= 1, timeout=30)  # counters restart with the server
    time.sleep(1.5)
    out = stop(proc)
    assert out.count("lost the server") == 1, out
    assert out.count("reconnected to") == 1, out
    assert "cannot reach" not in out and "BEAT refused" not in out


@SQLITE_ONLY
def test_a_job_running_across_a_restart_makes_no_second_outage(
    tmp_path: Path, werk_server: ServerProcess, client: Client
) -> None:
    # The slow job's connection (and the heartbeat's) date from before the restart: they
    # fail late, after the worker has reconnected, and must not count as a new outage.
    proc = run_worker(tmp_path, werk_server, "-c", "2")
    client.push(Job("slow", [6]))
    wait_until(lambda: client.info()["faktory"]["tasks"]["Busy"]["size"] >= 1)
    werk_server.kill()
    time.sleep(1.0)
    werk_server.start()
    client.push(Job("ok", [1]))
    wait_until(lambda: processed(client) >= 2, timeout=30)  # ok, then slow's ACK
    time.sleep(2.0)  # heartbeat_interval=1: the heartbeat has used its connection again
    out = stop(proc)
    assert out.count("lost the server") == 1, out
    assert out.count("reconnected to") == 1, out


@SQLITE_ONLY
def test_second_interrupt_stops_at_once(
    tmp_path: Path, werk_server: ServerProcess, client: Client
) -> None:
    client.push_bulk([Job("slow", [60]) for _ in range(2)])
    proc = run_worker(tmp_path, werk_server, "--shutdown-timeout", "25")
    wait_until(lambda: client.info()["faktory"]["tasks"]["Busy"]["size"] == 2)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    began = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, out = proc.communicate(timeout=20)
    assert time.monotonic() - began < 2.0, out
    assert "second SIGINT: stopping without waiting" in out
    # handed back: in their queue again at once, using no retry
    wait_until(lambda: client.info()["faktory"]["queues"].get("default") == 2)
    info = client.info()["faktory"]
    assert info["sets"]["retries"] == 0 and info["sets"]["working"] == 0


def test_stop_is_prompt_while_the_server_is_unreachable(tmp_path: Path) -> None:
    # No server on the port: the processors keep reconnecting, but hold no job, so a
    # SIGTERM has nothing to wait for (it used to wait the whole shutdown timeout).
    (tmp_path / "out_jobs.py").write_text(JOBS)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    args = [sys.executable, "-m", "werk", "worker", "out_jobs:worker", "--url", url]
    proc = subprocess.Popen(
        [*args, "--shutdown-timeout", "25"], cwd=tmp_path, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "cannot reach the server" in line:  # never connected: not "lost"
            assert f"{url} (ConnectionRefusedError" in line and line.endswith("retrying\n")
            break
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, out = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert time.monotonic() - began < 5.0, out
    assert "stopped" in out


@SQLITE_ONLY
def test_a_report_given_up_at_the_shutdown_deadline_is_named(
    tmp_path: Path, werk_server: ServerProcess, client: Client
) -> None:
    jid = client.push(Job("slow", [1.5]))
    proc = run_worker(tmp_path, werk_server, "--shutdown-timeout", "1")
    wait_until(lambda: client.info()["faktory"]["tasks"]["Busy"]["size"] == 1)
    werk_server.kill()  # the job ends while the server is away: its ACK cannot be sent
    time.sleep(2)
    out = stop(proc)
    assert "lost the server" in out
    assert f"could not send ACK for job {jid}: the server stayed unreachable; once its" in out
    assert "reservation expires (its reserve_for, 30 minutes by default) the server fails" in out
    assert "the job (ReservationExpired) and runs it again if it has retries left" in out
    assert "b'ACK" not in out


@SQLITE_ONLY
def test_the_library_never_configures_logging(tmp_path: Path, werk_server: ServerProcess) -> None:
    script = textwrap.dedent(
        f"""
        import logging, threading
        from werk.client import Worker
        logging.getLogger("werk").addHandler(logging.NullHandler())
        worker = Worker({werk_server.url!r}, concurrency=1)
        threading.Timer(1.0, worker.stop).start()
        worker.run()
        root = logging.getLogger()
        print(len(root.handlers), logging.getLevelName(root.level))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "WARNING"] and done.stderr == ""


@SQLITE_ONLY
def test_the_start_line_masks_the_password(
    tmp_path: Path, werk_server_factory: Callable[..., ServerProcess]
) -> None:
    server = werk_server_factory(password="s3cret")
    url = f"tcp://:s3cret@{server.host}:{server.port}"
    (tmp_path / "out_jobs.py").write_text(JOBS)
    args = [sys.executable, "-m", "werk", "worker", "out_jobs:worker", "--url", url]
    proc = subprocess.Popen(args, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    with Client(url) as client:
        client.push(Job("ok", [1]))
        wait_until(lambda: processed(client) >= 1)
    out = stop(proc)
    assert f"starting: server tcp://:***@{server.host}:{server.port}" in out
    assert "s3cret" not in out
