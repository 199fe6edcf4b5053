"""A corrupt or truncated database: ``werk server`` refuses to start, names the file, exits
non-zero and leaves the file exactly as it was (never a silent reset)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import ServerProcess
from tests.reliability.support import OK, connect

PAGE = 4096

DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "truncated to half": lambda d: d[: len(d) // 2],
    "truncated mid-page": lambda d: d[: 3 * PAGE + 1234],
    "garbage page in the middle": lambda d: d[: 3 * PAGE] + bytes(range(256)) * 16 + d[4 * PAGE :],
    "last page overwritten": lambda d: d[:-PAGE] + b"\xff" * PAGE,
    "header zeroed": lambda d: b"\0" * 100 + d[100:],
    "first page body scribbled": lambda d: d[:100] + b"\xaa" * 200 + d[300:],
    "random bytes": lambda d: hashlib.sha512(d).digest() * (len(d) // 64),
}


@pytest.fixture(scope="module")
def good_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Werk database with 400 jobs, closed cleanly (no WAL left)."""
    data = tmp_path_factory.mktemp("good") / "data"
    server = ServerProcess(data).start()
    try:
        with connect(server.host, server.port) as conn:
            lines = (
                "PUSH " + json.dumps({"jid": f"job{i:06d}", "jobtype": "X", "args": ["y" * 500]})
                for i in range(400)
            )
            assert all(r is not None for r in conn.pipeline(lines))
        assert server.stop() == 0
    finally:
        server.kill()
    return data / "werk.sqlite3"


def start(data_dir: Path) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "werk", "server", "-b", "127.0.0.1:0", "-w", ":0"]
    return subprocess.run(
        [*args, "-d", str(data_dir)], capture_output=True, text=True, timeout=30, check=False
    )


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_damaged_database_refuses_to_start(
    good_database: Path, tmp_path: Path, damage: str
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    db = data_dir / "werk.sqlite3"
    db.write_bytes(DAMAGE[damage](good_database.read_bytes()))
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    for _ in range(2):  # and the second attempt still refuses: nothing was reset
        result = start(data_dir)
        assert result.returncode != 0, result.stderr
        assert str(db) in result.stderr and "listening" not in result.stderr, result.stderr
        assert "refusing" in result.stderr or "corrupt" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_damaged_database_with_a_wal_refuses_to_start(good_database: Path, tmp_path: Path) -> None:
    # Given a database whose latest commits live in the WAL (the server was SIGKILLed),
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(good_database, data_dir / "werk.sqlite3")
    server = ServerProcess(data_dir).start()
    try:
        with connect(server.host, server.port) as conn:
            jobs = [{"jid": f"wal{i:07d}", "jobtype": "X", "args": ["z" * 300]} for i in range(100)]
            assert conn.call("PUSHB " + json.dumps(jobs)) == b"{}"
    finally:
        server.kill()
    db = data_dir / "werk.sqlite3"
    wal = data_dir / "werk.sqlite3-wal"
    assert wal.exists() and wal.stat().st_size > 0
    # when the main file loses its second half, then the server refuses to start (rather
    # than replaying the WAL onto a broken file) and changes neither file.
    db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
    saved = {p.name: p.read_bytes() for p in (db, wal)}
    result = start(data_dir)
    assert result.returncode != 0 and str(db) in result.stderr, result.stderr
    assert {p.name: p.read_bytes() for p in (db, wal)} == saved


def test_intact_database_after_a_kill_starts_with_every_job(tmp_path: Path) -> None:
    # The control case: the checks do not refuse a healthy file left by a SIGKILL.
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir).start()
    try:
        with connect(server.host, server.port) as conn:
            jobs = [{"jid": f"ok{i:08d}", "jobtype": "X", "args": []} for i in range(100)]
            assert conn.call("PUSHB " + json.dumps(jobs)) == b"{}"
        server.kill()
        shutil.copy(data_dir / "werk.sqlite3", tmp_path / "copy")
        server.start()
        with connect(server.host, server.port) as conn:
            assert conn.info()["faktory"]["queues"]["default"] == 100
    finally:
        server.kill()


def test_empty_database_file_refuses_to_start_until_deleted(tmp_path: Path) -> None:
    # Given a 0-byte werk.sqlite3 and no WAL (a botched copy; Werk never leaves one itself)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    db = data_dir / "werk.sqlite3"
    db.write_bytes(b"")
    # Then the server refuses, names the file and says what to do, and leaves it as it was
    for _ in range(2):
        result = start(data_dir)
        assert result.returncode != 0, result.stderr
        assert f"{db} is empty (0 bytes, no WAL)" in result.stderr, result.stderr
        assert "werk restore" in result.stderr and "delete the file" in result.stderr
        assert "listening" not in result.stderr and "Traceback" not in result.stderr
        assert db.stat().st_size == 0
    # And once the file is deleted, it starts with a new, empty store
    db.unlink()
    server = ServerProcess(data_dir).start()
    try:
        with connect(server.host, server.port) as conn:
            assert conn.info()["faktory"]["queues"] == {}
    finally:
        assert server.stop() == 0


def test_new_store_is_built_beside_and_renamed_into_place(tmp_path: Path) -> None:
    # Given the leftover of a start that crashed while creating the store
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "werk.sqlite3.new").write_bytes(b"")
    (data_dir / "werk.sqlite3.new-wal").write_bytes(b"x" * 100)
    # When the server starts, it builds a whole new store and removes the leftover
    server = ServerProcess(data_dir).start()
    try:
        with connect(server.host, server.port) as conn:
            assert (
                conn.call("PUSH " + json.dumps({"jid": "newstore01", "jobtype": "X", "args": []}))
                == OK
            )
    finally:
        assert server.stop() == 0
    assert sorted(p.name for p in data_dir.iterdir()) == ["werk.lock", "werk.sqlite3"]
    # And a restart opens it with the job, which the start log counts
    server.start()
    assert server.stop() == 0
    assert b"jobs: 1 queued, 0 in progress, 0 scheduled, 0 retries, 0 dead" in server.log
