"""Graceful shutdown under load, the idle timeout for producers, and the log formats."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import Peer, ServerProcess, push_line
from tests.ops.conftest import write_conf
from werk.protocol.resp import Simple


def test_sigterm_under_load_loses_no_acknowledged_job(
    sqlite_server_factory: Callable[..., ServerProcess],
) -> None:
    # Given producers pushing as fast as they can
    server = sqlite_server_factory()
    acked: set[str] = set()
    lock = threading.Lock()

    def produce(n: int) -> None:
        peer = Peer(server.host, server.port)
        if peer.hello() != Simple("OK"):
            return
        for i in range(100_000):
            jid = f"term{n}-{i:07d}"
            try:
                reply = peer.call(push_line(jid))
            except (ConnectionError, OSError):
                return
            if reply != Simple("OK"):
                return
            with lock:
                acked.add(jid)

    threads = [threading.Thread(target=produce, args=(n,), daemon=True) for n in range(6)]
    for thread in threads:
        thread.start()
    while len(acked) < 2000:
        time.sleep(0.01)
    # When the server gets SIGTERM
    status = server.stop()
    for thread in threads:
        thread.join(20)
    # Then it exits 0 and, restarted, holds every job it answered +OK
    assert status == 0, server.log.decode()
    assert b"stopped" in server.log
    server.start()
    peer = Peer(server.host, server.port)
    assert peer.hello() == Simple("OK")
    info = json.loads(peer.call("INFO"))  # type: ignore[arg-type]
    assert info["faktory"]["queues"]["default"] >= len(acked)
    from tests.ops.test_backup import jids_in

    assert server.stop() == 0
    assert acked <= jids_in(server.data_dir)


def test_idle_producers_are_closed_but_workers_are_not(
    werk_server_factory: Callable[..., ServerProcess], config_dir: Path
) -> None:
    write_conf(config_dir, "limits.toml", "[limits]\nidle_timeout = 0.5\n")
    server = werk_server_factory(extra_args=["-c", str(config_dir)])
    producer = Peer(server.host, server.port)
    worker = Peer(server.host, server.port)
    assert producer.hello() == Simple("OK")
    assert worker.hello(wid="idle-worker") == Simple("OK")
    assert producer.closed(timeout=5)
    assert worker.call('BEAT {"wid":"idle-worker"}') == Simple("OK")


def test_json_log_format(sqlite_server_factory: Callable[..., ServerProcess]) -> None:
    server = sqlite_server_factory(extra_args=["--log-format", "json"])
    server.stop()
    entries = [json.loads(line) for line in server.log.decode().splitlines()]
    assert {"time", "level", "logger", "msg"} <= set(entries[0])
    assert any("listening on" in entry["msg"] for entry in entries)
    assert entries[-1]["msg"] == "stopped"


def test_second_signal_forces_the_exit(sqlite_server_factory: Callable[..., ServerProcess]) -> None:
    server = sqlite_server_factory()
    busy = Peer(server.host, server.port)
    assert busy.hello(wid="blocked") == Simple("OK")
    busy.send("FETCH empty\r\n")  # a blocking fetch keeps the connection busy
    time.sleep(0.2)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    server.proc.send_signal(signal.SIGTERM)
    assert server.stop() == 1  # joins the log reader too
    assert b"SIGTERM: stopping gracefully (send it again to exit at once)" in server.log
    assert b"second signal: exiting now" in server.log


SECOND_SIGNAL_AT = """
import logging, os, signal, sys
from werk.cli.main import main

SIG, AT = signal.Signals[sys.argv[1]], sys.argv[2]

class Second(logging.Handler):
    '''Sends the second signal the moment "stopped" is logged, or later, once the event
    loop is closed and run() flushes the log before exiting.'''
    def emit(self, record):
        if AT == "stopped" and record.getMessage() == "stopped":
            os.kill(os.getpid(), SIG)
    def close(self):
        super().close()
        if AT == "exit":
            os.kill(os.getpid(), SIG)

logging.getLogger("werk.server").addHandler(Second())
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.parametrize("at", ["stopped", "exit"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_second_signal_after_stopped_still_exits_at_once(
    tmp_path: Path, sig: signal.Signals, at: str
) -> None:
    # Given a server stopping gracefully after a first signal
    log = tmp_path / "server.log"
    args = [sys.executable, "-c", SECOND_SIGNAL_AT, sig.name, at, "server", "-b", "127.0.0.1:0"]
    args += ["-w", ":0", "-d", str(tmp_path / "data"), "-c", str(tmp_path / "conf")]
    with log.open("wb") as err:
        proc = subprocess.Popen(args, stderr=err)
    try:
        deadline = time.monotonic() + 30
        while b"listening on" not in log.read_bytes():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        # When the second signal comes right after the "stopped" line, or in the teardown
        proc.send_signal(sig)
        status = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # Then it is logged and the status is 1, not death by the signal (130/143, silent)
    text = log.read_text()
    assert status == 1, text
    assert text.index("stopped") < text.index("second signal: exiting now")
