"""A restored backup (or a killed server's store) brings back no worker process.

Process records are heartbeats, not data: Faktory keeps them in memory only and Sidekiq
expires them after 60 s. A backup taken while a worker is connected holds its record;
the server started on the restored store must not show that worker as running.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.helpers import Peer, ServerProcess
from tests.ops.test_backup import backup, werk
from werk.protocol.resp import Simple


def stored_wids(path: Path) -> set[str]:
    """Return the wids of the process records in a store file (read-only)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {row[0] for row in conn.execute("SELECT wid FROM processes")}
    finally:
        conn.close()


def workers(server: ServerProcess) -> int:
    """Return INFO's count of known worker processes."""
    peer = Peer(server.host, server.port)
    assert peer.hello() == Simple("OK")
    info = peer.call("INFO")
    text = info.decode() if isinstance(info, bytes) else str(info)
    size: int = json.loads(text)["faktory"]["tasks"]["Workers"]["size"]
    return size


def busy_page(server: ServerProcess) -> str:
    """Return the HTML of the server's Busy page."""
    url = f"http://{server.host}:{server.web_port}/busy"
    with urllib.request.urlopen(url, timeout=10) as response:
        text: str = response.read().decode()
    return text


def test_a_restored_backup_shows_no_worker_as_running(
    sqlite_server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    # Given a server with a connected worker process that has beaten
    server = sqlite_server_factory(web=True)
    worker = Peer(server.host, server.port)
    assert worker.hello(wid="w-restored", hostname="box", pid=7, labels=["py"]) == Simple("OK")
    assert worker.call('BEAT {"wid":"w-restored"}') == Simple("OK")
    assert "w-restored" in busy_page(server)
    # When a backup is taken (it holds the worker's record) and the server is killed
    report = backup(server.data_dir, tmp_path / "backups")
    assert stored_wids(Path(report["path"])) == {"w-restored"}
    server.kill()
    # ... and the backup is restored into a new data directory
    restored = tmp_path / "restored"
    result = werk("restore", report["path"], "-d", str(restored))
    assert result.returncode == 0, result.stderr
    assert stored_wids(restored / "werk.sqlite3") == {"w-restored"}
    # Then a server on the restored store knows no worker process
    again = sqlite_server_factory(data_dir=restored, web=True)
    assert workers(again) == 0
    page = busy_page(again)
    assert "No worker process is connected." in page and "w-restored" not in page


def test_a_killed_servers_workers_are_not_shown_after_its_restart(
    sqlite_server_factory: Callable[..., ServerProcess],
) -> None:
    # Given a worker process connected when the server is killed
    server = sqlite_server_factory(web=True)
    worker = Peer(server.host, server.port)
    assert worker.hello(wid="w-crashed") == Simple("OK")
    server.kill()
    assert stored_wids(server.data_dir / "werk.sqlite3") == {"w-crashed"}
    # When it starts again on the same store
    server.start()
    # Then the worker is not listed (it reconnects and registers again if alive)
    assert workers(server) == 0
    assert "w-crashed" not in busy_page(server)
