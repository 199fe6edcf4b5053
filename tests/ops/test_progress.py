"""Long commands show progress on a terminal, stay quiet in a pipe, and end with one line."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.helpers import Peer, ServerProcess, push_line
from tests.ops.test_backup import werk
from werk.cli.progress import Progress, duration_text, size_text
from werk.protocol.resp import Simple


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def store_with_jobs(factory: Callable[..., ServerProcess], count: int) -> Path:
    server = factory()
    peer = Peer(server.host, server.port)
    assert peer.hello() == Simple("OK")
    for n in range(count):
        assert peer.call(push_line(f"progress-job-{n}")) == Simple("OK")
    assert server.stop() == 0
    return server.data_dir


def test_backup_and_restore_in_a_pipe_print_one_line_each(
    sqlite_server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    data_dir = store_with_jobs(sqlite_server_factory, 3)
    done = werk("backup", "-d", str(data_dir), "-o", str(tmp_path / "b.sqlite3"))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    (line,) = done.stdout.splitlines()
    assert line.startswith(f"backup written to {tmp_path / 'b.sqlite3'}: ")
    assert "(3 jobs (3 enqueued, 0 in progress, 0 scheduled, 0 retries, 0 dead);" in line
    assert "sha256 " in line
    done = werk("restore", str(tmp_path / "b.sqlite3"), "-d", str(tmp_path / "restored"))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    (line,) = done.stdout.splitlines()
    assert line.startswith(f"restored {tmp_path / 'b.sqlite3'} into {tmp_path / 'restored'} in ")


def test_backup_on_a_terminal_shows_progress_then_the_summary(
    sqlite_server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    data_dir = store_with_jobs(sqlite_server_factory, 2)
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "werk", "backup", "-d", str(data_dir), "-o", str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=secondary,
            text=True,
            timeout=60,
        )
        os.close(secondary)
        drawn = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(primary)
    assert done.returncode == 0
    assert b"\rwerk backup: copying the database" in drawn
    assert b"werk backup: checksum" in drawn
    assert drawn.endswith(b"\r")  # the line is erased before the summary
    assert done.stdout.startswith("backup written to ")


def test_bench_in_a_pipe_prints_json_lines_and_one_summary(tmp_path: Path) -> None:
    done = werk("bench", "push_bulk", "-n", "200", "--rounds", "1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1 and '"scenario": "push_bulk"' in done.stdout
    (summary,) = done.stderr.splitlines()
    assert summary.startswith("werk bench: 1 scenarios x 1 rounds on sqlite in ")


def test_progress_redraws_one_line_and_erases_it() -> None:
    terminal = Terminal()
    progress = Progress("werk backup", terminal)
    progress.step("checksum", 0, 4_000_000)
    progress.step("checksum", 4_000_000, 4_000_000)  # too soon after: not drawn
    progress.show("almost done", force=True)
    progress.clear()
    first = "werk backup: checksum 0 B of 4.0 MB (0%)"
    second = "werk backup: almost done"
    assert terminal.getvalue() == (f"\r{first}\r{second.ljust(len(first))}\r{' ' * len(second)}\r")
    quiet = io.StringIO()
    Progress("werk backup", quiet).show("x", force=True)
    assert quiet.getvalue() == ""


def test_sizes_and_durations_read_well() -> None:
    assert [size_text(n) for n in (532, 12_400, 48_000_000, 3_200_000_000)] == [
        "532 B",
        "12.4 kB",
        "48.0 MB",
        "3.2 GB",
    ]
    assert [duration_text(s) for s in (0.42, 12.3, 185)] == ["0.4 s", "12 s", "3 min 05 s"]
