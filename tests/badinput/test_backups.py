"""``werk backup`` and ``werk restore`` given paths and files that are not what they should
be: one line, a failure status, and nothing replaced. Run as root, ``werk backup -o
/dev/full`` replaced the device node with the backup; ``-o <data dir>/werk.sqlite3``
replaced the live database under its server; a deeply nested manifest was a traceback.
Only the embedded store has backups: SQLite only."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import SQLITE_ONLY
from tests.helpers import ServerProcess
from tests.ops.test_backup import backup, holding_one_job, jids_in, werk
from werk.storage.sqlite.backup import BackupError, verify


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


MANIFEST_VALUES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=4)
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.integers() | st.text(max_size=2), max_size=2)
)


@SQLITE_ONLY
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_manifest_of_any_shape_is_refused_or_read(
    werk_server_factory: Callable[..., ServerProcess], tmp_path: Path, data: st.DataObject
) -> None:
    # counts = "x" was an AttributeError traceback; format 99 was restored as format 1.
    made = tmp_path / "made.sqlite3"
    if not made.exists():
        server = holding_one_job(werk_server_factory, "jid-kept-0003")
        backup(server.data_dir, made)
    manifest = json.loads(Path(f"{made}.json").read_text())
    original = dict(manifest)
    for key in data.draw(st.sets(st.sampled_from(sorted(manifest)), min_size=1, max_size=3)):
        manifest[key] = data.draw(MANIFEST_VALUES, label=key)
    Path(f"{made}.json").write_text(json.dumps(manifest))
    try:
        read = verify(made)
    except BackupError as exc:
        assert "manifest" in str(exc) or "backup" in str(exc), exc
    else:
        assert read.format == 1 and isinstance(read.counts, dict), read
    finally:
        Path(f"{made}.json").write_text(json.dumps(original))


@SQLITE_ONLY
def test_restore_of_a_manifest_of_the_wrong_types_is_one_line(
    werk_server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = holding_one_job(werk_server_factory, "jid-kept-0004")
    made = Path(backup(server.data_dir, tmp_path / "b.sqlite3")["path"])
    manifest = json.loads(Path(f"{made}.json").read_text())
    for key, value, message in (
        ("counts", "x", "counts must be an object of whole numbers"),
        ("format", 99, "format 99 is not 1"),
        ("size", "77824", "size must be a whole number"),
    ):
        Path(f"{made}.json").write_text(json.dumps({**manifest, key: value}))
        result = werk("restore", str(made), "-d", str(tmp_path / "new"))
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert f"is not a valid backup manifest: {message}" in result.stderr, result.stderr
    assert not (tmp_path / "new" / "werk.sqlite3").exists()
