"""The relaxed durability mode (``--durability os``): ``+OK`` once the OS has the commit.

A SIGKILL of Werk leaves the kernel's page cache intact, so every job that got ``+OK`` is
still there after a restart; only a power loss or a kernel crash could lose the last
commits. The default mode's contract is tested in :mod:`tests.server.test_durability`.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import Peer, ServerProcess, push_line
from werk.protocol.resp import Simple
from werk.server.settings import ConfigError, load_config

OK = Simple("OK")
PRODUCERS = 4


@pytest.fixture
def relaxed(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "data", extra_args=["--durability", "os"]).start()
    yield server
    server.kill()


def server_info(server: ServerProcess) -> dict[str, Any]:
    conn = Peer(server.host, server.port)
    assert conn.hello() == OK
    raw = conn.call("INFO")
    assert isinstance(raw, bytes)
    doc: dict[str, Any] = json.loads(raw)
    return doc


def test_every_acknowledged_push_survives_a_sigkill_in_os_mode(relaxed: ServerProcess) -> None:
    # Given: four producers pushing one job at a time as fast as they can, in "os" mode.
    acknowledged: list[str] = []
    lock = threading.Lock()

    def produce(worker: int) -> None:
        conn = Peer(relaxed.host, relaxed.port)
        conn.hello()
        for i in range(200_000):
            jid = f"os-{worker}-{i:06d}"
            try:
                if conn.call(push_line(jid)) != OK:
                    return
            except OSError:
                return
            with lock:
                acknowledged.append(jid)

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(PRODUCERS)]
    for thread in threads:
        thread.start()
    # When: Werk is SIGKILLed mid-stream (the OS keeps running), then restarted.
    while len(acknowledged) < 3000:
        threading.Event().wait(0.01)
    relaxed.kill()
    for thread in threads:
        thread.join(10)
    relaxed.start()
    # Then: every job that got +OK is queued; at most one unanswered PUSH per producer
    # may have been committed on top.
    queued = server_info(relaxed)["faktory"]["queues"]["default"]
    assert len(acknowledged) <= queued <= len(acknowledged) + PRODUCERS
    conn = Peer(relaxed.host, relaxed.port)
    assert conn.hello() == OK
    found: set[str] = set()
    for _ in range(queued):
        job = conn.call("FETCH default")
        assert isinstance(job, bytes)
        found.add(json.loads(job)["jid"])
    missing = set(acknowledged) - found
    assert not missing, f"{len(missing)} acknowledged jobs lost"


def test_the_mode_is_shown_in_info_the_startup_log_and_the_dashboard(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", web=True, extra_args=["--durability", "os"])
    server.start()
    try:
        assert server_info(server)["server"]["durability"] == "os"
        assert b"durability: os" in server.log
        page = httpx.get(f"http://{server.host}:{server.web_port}/").text
        assert re.search(r">os</span><span class=\"label\">Durability<", page)
    finally:
        server.kill()


def test_fsync_is_the_default(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        assert server_info(server)["server"]["durability"] == "fsync"
        assert b"durability: fsync" in server.log
    finally:
        server.kill()


def test_durability_comes_from_flag_environment_or_file(tmp_path: Path) -> None:
    conf = tmp_path / "conf.d"
    conf.mkdir()
    (conf / "storage.toml").write_text('[storage]\ndurability = "os"\n')
    flags: dict[str, Any] = {"config_dir": str(tmp_path)}
    assert load_config(flags, env={}).durability == "os"
    assert load_config(flags, env={"WERK_DURABILITY": "fsync"}).durability == "fsync"
    assert load_config({**flags, "durability": "fsync"}, env={}).durability == "fsync"
    empty: dict[str, Any] = {"config_dir": str(tmp_path / "none")}
    assert load_config(empty, env={}).durability == "fsync"
    with pytest.raises(ConfigError, match="durability"):
        load_config(empty, env={"WERK_DURABILITY": "sometimes"})
