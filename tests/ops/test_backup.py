"""``werk backup`` / ``werk restore`` on the embedded SQLite store (SQLite only: a Redis
store is backed up with Redis's own tools, which the commands say)."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Peer, ServerProcess, push_line
from werk.protocol.resp import Simple
from werk.storage.sqlite.backup import kept_path

JOBS = 10_000
PRODUCERS = 8


def werk(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the ``werk`` command line and return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "werk", *args], capture_output=True, text=True, timeout=timeout
    )


def backup(data_dir: Path, output: Path) -> dict[str, Any]:
    """Run ``werk backup --json`` and return its report."""
    result = werk("backup", "-d", str(data_dir), "-o", str(output), "--json")
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def jids_in(data_dir_or_file: Path) -> set[str]:
    """Return the jids of the queued jobs in a store file (read-only)."""
    path = data_dir_or_file if data_dir_or_file.is_file() else data_dir_or_file / "werk.sqlite3"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {row[0] for row in conn.execute("SELECT jid FROM jobs")}
    finally:
        conn.close()


def holding_one_job(factory: Callable[..., ServerProcess], jid: str) -> ServerProcess:
    """Start a server on a store of its own and push one job with ``jid`` to it."""
    server = factory()
    peer = Peer(server.host, server.port)
    assert peer.hello() == Simple("OK")
    assert peer.call(push_line(jid)) == Simple("OK")
    return server


class Producers:
    """Threads pushing ``JOBS`` jobs; ``acked`` holds every jid answered ``+OK``."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.acked: set[str] = set()
        self.sent: set[str] = set()
        self.lock = threading.Lock()
        self.errors: list[str] = []
        self.threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(PRODUCERS)
        ]

    def _run(self, n: int) -> None:
        peer = Peer(self.server.host, self.server.port)
        assert peer.hello() == Simple("OK")
        for i in range(JOBS // PRODUCERS):
            jid = f"producer{n}-{i:06d}"
            with self.lock:
                self.sent.add(jid)
            try:
                reply = peer.call(push_line(jid, queue=f"q{n % 3}"))
            except (ConnectionError, OSError):
                return
            if reply != Simple("OK"):
                self.errors.append(repr(reply))
                return
            with self.lock:
                self.acked.add(jid)

    def start(self) -> Producers:
        for thread in self.threads:
            thread.start()
        return self

    def snapshot(self) -> set[str]:
        with self.lock:
            return set(self.acked)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(60)


def test_backup_under_load_restores_a_consistent_store(
    sqlite_server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    # Given producers pushing 10,000 jobs
    server = sqlite_server_factory()
    producers = Producers(server).start()
    while len(producers.snapshot()) < JOBS // 3:
        assert not producers.errors, producers.errors
        time.sleep(0.01)
    # When a backup is taken while they push
    acked_before = producers.snapshot()
    report = backup(server.data_dir, tmp_path / "backups")
    acked_after = producers.snapshot()
    producers.join()
    assert len(producers.acked) == JOBS
    assert len(acked_before) < len(acked_after) or len(acked_after) < JOBS, "not under load"
    # Then the backup restores into a new data dir ...
    restored = tmp_path / "restored"
    result = werk("restore", report["path"], "-d", str(restored))
    assert result.returncode == 0, result.stderr
    # ... with every job acknowledged before the backup, and only jobs that were pushed
    jids = jids_in(restored)
    assert acked_before <= jids
    assert jids <= producers.sent and jids <= producers.acked
    assert report["counts"]["queued"] == len(jids) and report["counts"]["working"] == 0
    # And a server on the restored store agrees on the counts
    copy = sqlite_server_factory(data_dir=restored)
    peer = Peer(copy.host, copy.port)
    assert peer.hello() == Simple("OK")
    info = json.loads(peer.call("INFO"))  # type: ignore[arg-type]
    assert info["faktory"]["total_enqueued"] == len(jids)
    assert sum(info["faktory"]["queues"].values()) == len(jids)


@pytest.fixture
def backed_up(
    sqlite_server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> tuple[Path, ServerProcess]:
    """A backup of a store holding three jobs, and the (stopped) server that made them."""
    server = sqlite_server_factory()
    peer = Peer(server.host, server.port)
    assert peer.hello() == Simple("OK")
    for n in range(3):
        assert peer.call(push_line(f"backed-up-{n}")) == Simple("OK")
    path = Path(backup(server.data_dir, tmp_path / "b.sqlite3")["path"])
    assert server.stop() == 0
    return path, server


def test_restore_refuses_a_store_with_data_without_force(
    backed_up: tuple[Path, ServerProcess], sqlite_server_factory: Callable[..., ServerProcess]
) -> None:
    path, _ = backed_up
    other = holding_one_job(sqlite_server_factory, "precious-job")
    # While the server runs, restore refuses: the directory is locked
    result = werk("restore", str(path), "-d", str(other.data_dir), "--force")
    assert result.returncode == 1 and "in use by another Werk server" in result.stderr
    assert other.stop() == 0
    result = werk("restore", str(path), "-d", str(other.data_dir))
    assert result.returncode == 1 and "pass --force" in result.stderr
    assert jids_in(other.data_dir) == {"precious-job"}
    result = werk("restore", str(path), "-d", str(other.data_dir), "--force")
    assert result.returncode == 0, result.stderr
    assert jids_in(other.data_dir) == {"backed-up-0", "backed-up-1", "backed-up-2"}
    kept = list(other.data_dir.glob("werk.sqlite3.replaced-*"))
    assert len(kept) == 1 and jids_in(kept[0]) == {"precious-job"}
    # ... named with the UTC time in the backups' style, and never overwritten by a second
    assert re.fullmatch(r"werk\.sqlite3\.replaced-\d{8}T\d{6}\.\d{3}Z", kept[0].name)


def test_dry_run_changes_nothing(backed_up: tuple[Path, ServerProcess], tmp_path: Path) -> None:
    path, _ = backed_up
    target = tmp_path / "empty"
    result = werk("restore", str(path), "-d", str(target), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "nothing was changed" in result.stderr
    assert not (target / "werk.sqlite3").exists()


def test_dry_run_reports_while_the_server_runs(
    backed_up: tuple[Path, ServerProcess], sqlite_server_factory: Callable[..., ServerProcess]
) -> None:
    # docs/operations.md checks a backup with --dry-run before it stops the server
    path, _ = backed_up
    other = holding_one_job(sqlite_server_factory, "precious-job")
    result = werk("restore", str(path), "-d", str(other.data_dir), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "is intact" in result.stdout and "nothing was changed" in result.stderr
    assert "stop the server" in result.stderr and "--force" in result.stderr
    assert other.stop() == 0
    assert jids_in(other.data_dir) == {"precious-job"}
    result = werk("restore", str(path), "-d", str(other.data_dir), "--dry-run", "--force")
    assert result.returncode == 0, result.stderr
    assert "to restore" not in result.stderr
    assert jids_in(other.data_dir) == {"precious-job"}


def test_backup_into_a_new_directory_named_with_a_slash(
    sqlite_server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    # `-o /var/backups/werk/` (docs/operations.md) when the directory does not exist yet
    server = holding_one_job(sqlite_server_factory, "kept-job")
    target = tmp_path / "backups" / "werk"
    result = werk("backup", "-d", str(server.data_dir), "-o", f"{target}/", "--json")
    assert result.returncode == 0, result.stderr
    path = Path(json.loads(result.stdout)["path"])
    assert target.is_dir() and path.parent == target and path.name.startswith("werk-")
    assert (target / (path.name + ".json")).is_file()
    assert jids_in(path) == {"kept-job"}


def test_corrupt_or_truncated_backups_are_rejected(
    backed_up: tuple[Path, ServerProcess], tmp_path: Path
) -> None:
    path, _ = backed_up
    data = path.read_bytes()
    target = tmp_path / "target"
    truncated = tmp_path / "truncated.sqlite3"
    truncated.write_bytes(data[: len(data) // 2])
    (tmp_path / "truncated.sqlite3.json").write_bytes(
        (path.parent / (path.name + ".json")).read_bytes()
    )
    result = werk("restore", str(truncated), "-d", str(target))
    assert result.returncode == 1 and "truncated" in result.stderr
    corrupt = tmp_path / "corrupt.sqlite3"
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(flipped))
    (tmp_path / "corrupt.sqlite3.json").write_bytes(
        (path.parent / (path.name + ".json")).read_bytes()
    )
    result = werk("restore", str(corrupt), "-d", str(target))
    assert result.returncode == 1 and "SHA-256" in result.stderr
    # A damaged file whose manifest was rewritten to match still fails the integrity check
    manifest = json.loads((tmp_path / "corrupt.sqlite3.json").read_text())
    page = 4096
    damaged = bytearray(data)
    damaged[page + 8 : page + 64] = b"\xff" * 56
    corrupt.write_bytes(bytes(damaged))
    import hashlib

    manifest["sha256"] = hashlib.sha256(bytes(damaged)).hexdigest()
    (tmp_path / "corrupt.sqlite3.json").write_text(json.dumps(manifest))
    result = werk("restore", str(corrupt), "-d", str(target))
    assert result.returncode == 1
    assert "integrity check" in result.stderr or "not a readable SQLite" in result.stderr
    without = tmp_path / "lonely.sqlite3"
    without.write_bytes(data)
    result = werk("restore", str(without), "-d", str(target))
    assert result.returncode == 1 and "lonely.sqlite3.json is missing" in result.stderr
    assert not (target / "werk.sqlite3").exists()


@pytest.mark.parametrize(
    ("url", "command", "advice"),
    [
        ("redis://127.0.0.1:6379/0", "backup", "Use Redis persistence"),
        ("redis://127.0.0.1:6379/0", "restore", "Restore a Redis store with Redis's own tools"),
        ("postgresql://u@h/db", "backup", "Back up Werk's schema with PostgreSQL's own tools"),
        ("postgresql://u@h/db", "restore", "Restore Werk's schema with PostgreSQL's own tools"),
        (
            "postgresql://u@h/db?schema=prox",
            "backup",
            "Back up Werk's schema with PostgreSQL's own tools (pg_dump -n prox,",
        ),
        (
            "redis://127.0.0.1:6379/0",
            "restore",
            "Restore a Redis store with Redis's own tools, with the Werk servers stopped: stop"
            " Redis, move its appendonlydir aside",
        ),
    ],
)
def test_backup_and_restore_of_another_store_explain_and_fail(
    tmp_path: Path, url: str, command: str, advice: str
) -> None:
    where = ["-o", str(tmp_path)] if command == "backup" else [str(tmp_path / "b.sqlite3")]
    result = werk(command, "--storage", url, *where)
    assert result.returncode == 2
    verb = {"backup": "backs up", "restore": "restores"}[command]
    assert f"Werk only {verb} its embedded SQLite store. {advice}" in result.stderr
    assert not list(tmp_path.iterdir())


def test_a_kept_store_is_never_overwritten(tmp_path: Path) -> None:
    first = kept_path(tmp_path, 1795976213.122)
    assert first.name == "werk.sqlite3.replaced-20261129T181653.122Z"
    first.touch()
    assert kept_path(tmp_path, 1795976213.122).name == first.name + "-2"


def test_periodic_backups_keep_the_newest(
    sqlite_server_factory: Callable[..., ServerProcess], config_dir: Path, tmp_path: Path
) -> None:
    from tests.ops.conftest import write_conf

    target = tmp_path / "periodic"
    write_conf(config_dir, "backup.toml", f'[backup]\nevery = 0.3\nkeep = 2\ndir = "{target}"\n')
    server = sqlite_server_factory(extra_args=["-c", str(config_dir)])
    deadline = time.monotonic() + 60
    while server.log.count(b"old removed") < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.log.count(b"old removed") >= 4
    assert server.stop() == 0  # no backup is taken or removed while the newest is read
    backups = sorted(target.glob("werk-*.sqlite3"))
    assert 1 <= len(backups) <= 2
    result = werk("restore", str(backups[-1]), "-d", str(tmp_path / "r"), "--dry-run")
    assert result.returncode == 0, result.stderr


def test_bad_paths_give_one_line_and_a_failure_status(
    backed_up: tuple[Path, ServerProcess], tmp_path: Path
) -> None:
    # The finding: `werk backup -o afile/x` and `-o /proc/nope/x` printed a traceback
    # (FileExistsError, FileNotFoundError). Every command that creates a directory says
    # which one, and why, on one line (werk.paths.make_dir); run as root too, so no chmod.
    path, server = backed_up
    blocker = tmp_path / "afile"
    blocker.write_text("not a directory")
    store = str(server.data_dir)
    cases = [
        (["backup", "-d", store, "-o", f"{blocker}/x.sqlite3"], f"{blocker} is a file, not"),
        (["backup", "-d", store, "-o", f"{blocker}/sub/"], f"{blocker} is a file, not"),
        (["backup", "-d", store, "-o", "/proc/nope/x"], "cannot create the backup directory"),
        (["backup", "-d", store, "-o", "/proc/x.sqlite3"], "to /proc/x.sqlite3 failed"),
        (["restore", str(path), "-d", str(blocker)], f"data directory {blocker}: {blocker} is"),
        (["restore", str(path), "-d", f"{blocker}/sub"], f"{blocker} is a file, not"),
        (["restore", str(path), "-d", "/proc"], "cannot create its lock file"),
        (["restore", str(tmp_path), "-d", store], "is a directory: give the backup's"),
    ]
    for args, message in cases:
        result = werk(*args)
        assert result.returncode == 1, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert result.stderr.startswith(f"werk {args[0]}: "), result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
    for data_dir, message in ((blocker, "is a file, not"), ("/proc", "lock file werk.lock")):
        result = werk("server", "-b", "127.0.0.1:0", "-w", ":0", "-d", str(data_dir), timeout=30)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert "cannot start: cannot " in result.stderr and message in result.stderr
    assert blocker.read_text() == "not a directory"
