"""``werk backup`` and ``werk restore`` given paths and files that are not what they should
be: one line, a failure status, and nothing replaced. Run as root, ``werk backup -o
/dev/full`` replaced the device node with the backup; ``-o <data dir>/werk.sqlite3``
replaced the live database under its server; a deeply nested manifest was a traceback.
Only the embedded store has backups: SQLite only."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from tests.conftest import SQLITE_ONLY
from tests.helpers import ServerProcess
from tests.ops.test_backup import backup, holding_one_job, jids_in, werk


@SQLITE_ONLY
def test_backup_refuses_to_replace_what_is_not_a_backup(
    werk_server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = holding_one_job(werk_server_factory, "jid-kept-0001")
    store = server.data_dir
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link.sqlite3"
    link.symlink_to(tmp_path / "elsewhere.sqlite3")
    cases = [
        (fifo, "exists and is not a regular file"),
        (link, "exists and is not a regular file"),
        (store / "werk.sqlite3", "is a file of the store itself"),
        (store / "werk.sqlite3-wal", "is a file of the store itself"),
        (store / "werk.lock", "is a file of the store itself"),
    ]
    for target, message in cases:
        result = werk("backup", "-d", str(store), "-o", str(target))
        assert result.returncode == 1, (target, result.stdout)
        assert result.stderr.startswith("werk backup: ") and message in result.stderr, result
        assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and link.is_symlink()
    assert jids_in(store) == {"jid-kept-0001"}
    assert backup(store, tmp_path / "fine.sqlite3")["path"].endswith("fine.sqlite3")


@SQLITE_ONLY
def test_restore_of_a_deeply_nested_manifest_is_one_line(
    werk_server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = holding_one_job(werk_server_factory, "jid-kept-0002")
    made = Path(backup(server.data_dir, tmp_path / "b.sqlite3")["path"])
    Path(f"{made}.json").write_text("[" * 100_000 + "]" * 100_000)
    result = werk("restore", str(made), "-d", str(tmp_path / "new"))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "is not a valid backup manifest: nested too deeply" in result.stderr
