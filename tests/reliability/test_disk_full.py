"""Disk full: the SQLite store on a 4 MiB tmpfs of its own, filled to the last byte.

PUSH must get a clear ``-ERR storage error: ...`` (no crash, no hang), FETCH, ACK and INFO
keep working, and once space is freed PUSH works again and nothing confirmed is lost.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require
from tests.helpers import ServerProcess
from tests.reliability.crash_harness import drain
from tests.reliability.support import OK, connect, is_error


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted for the test and unmounted afterwards."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    require(result.returncode == 0, f"cannot mount a tmpfs: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(path: Path) -> int:
    """Write ``path`` until the filesystem is full; return the bytes written."""
    written = 0
    with path.open("wb", buffering=0) as f:
        for size in (1 << 16, 512, 1):
            try:
                while True:
                    written += f.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == 28, exc  # ENOSPC
    return written


def job(jid: str, size: int) -> str:
    return "PUSH " + json.dumps({"jid": jid, "jobtype": "Disk", "args": ["x" * size]})


def test_full_disk_refuses_push_serves_fetch_and_recovers(small_disk: Path) -> None:
    server = ServerProcess(small_disk / "data").start()
    try:
        conn = connect(server.host, server.port)
        confirmed = {f"before{i:04d}" for i in range(20)}
        assert all(conn.call(job(jid, 1000)) == OK for jid in sorted(confirmed))

        # Given a disk without a free byte,
        filler = small_disk / "filler"
        assert fill(filler) > 0 and os.statvfs(small_disk).f_bavail == 0
        # when jobs are pushed, then each gets a clear error (or fits in space SQLite
        # already holds) and the connection carries on.
        refused = 0
        for i in range(10):
            reply = conn.call(job(f"full{i:06d}", 20_000))
            if reply == OK:
                confirmed.add(f"full{i:06d}")
            else:
                assert is_error(reply, "ERR storage error: SQLite write failed"), reply
                assert "full" in str(reply)
                refused += 1
        assert refused >= 9
        # FETCH, ACK and INFO keep working, on this connection and on a new one.
        fetched = conn.call("FETCH default")
        assert isinstance(fetched, bytes)
        acked = json.loads(fetched)["jid"]
        assert conn.call(f'ACK {{"jid":"{acked}"}}') == OK
        with connect(server.host, server.port) as other:
            assert other.info()["faktory"]["queues"]["default"] == len(confirmed) - 1

        # When space is freed, PUSH works again.
        filler.unlink()
        for i in range(5):
            assert conn.call(job(f"after{i:05d}", 20_000)) == OK
            confirmed.add(f"after{i:05d}")
        conn.close()
        assert b"Traceback" not in server.log

        # And after a crash every confirmed job is still there (the ACKed one may return:
        # its background write may have failed on the full disk, which at-least-once allows).
        server.kill()
        server.start()
        with connect(server.host, server.port) as conn:
            found = set(drain(conn))
        assert confirmed - {acked} <= found <= confirmed
    finally:
        server.kill()


def test_backup_to_a_full_disk_fails_and_leaves_no_partial_files(
    small_disk: Path, tmp_path: Path
) -> None:
    # Given a store of about 1 MiB
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir).start()
    try:
        with connect(server.host, server.port) as conn:
            assert all(conn.call(job(f"bk{i:06d}", 10_000)) == OK for i in range(100))
    finally:
        assert server.stop() == 0
    size = (data_dir / "werk.sqlite3").stat().st_size
    failed = 0
    # When werk backup writes to a disk with no room, or about the store's size (the copy
    # then fits, and SQLite's -wal/-shm or -journal beside it do not)
    for room in (0, size, size + 4096, size + 8192):
        for path in small_disk.iterdir():
            path.unlink()
        stat = os.statvfs(small_disk)
        (small_disk / "filler").write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - room))
        result = subprocess.run(
            [sys.executable, "-m", "werk", "backup", "-d", str(data_dir), "-o", str(small_disk)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode == 0:
            continue
        # Then it fails cleanly, and nothing but the filler is left on the disk
        failed += 1
        assert result.returncode == 1, result.stderr
        assert " failed: " in result.stderr and "Traceback" not in result.stderr
        assert [p.name for p in small_disk.iterdir()] == ["filler"], room
    assert failed >= 3
