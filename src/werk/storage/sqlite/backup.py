"""Backups of the embedded SQLite store: a consistent snapshot with a manifest, and restore.

:func:`backup` copies the database with SQLite's online backup API from its own read
connection while the server keeps writing (WAL lets it): the copy is the state of one
committed transaction, so every job in it was committed (and so ``+OK``'d or about to be).
The copy goes to a temporary file, is fsynced and renamed; its manifest
(``<backup>.json``: SHA-256, size, schema version, counts) is written the same way, last,
so a backup without its manifest is an unfinished one. :func:`verify` checks a backup
(manifest, checksum, ``PRAGMA integrity_check``, Werk identity, schema version) and
:func:`restore` puts it in place of a stopped store's file. SQLite only: Redis has its own
persistence and replication.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from werk import __version__
from werk.errors import StorageError
from werk.paths import DirectoryError, make_dir
from werk.storage.sqlite import schema

MANIFEST_FORMAT = 1
SUFFIX = ".sqlite3"
CHUNK = 1 << 20

StepCallback = Callable[[str, int, int], None]
"""Told ``(phase, bytes done, bytes in all)`` as a long step goes (``werk backup``'s
progress line); ``done == 0`` starts a phase."""


def _no_progress(phase: str, done: int, total: int) -> None:
    pass


class BackupError(StorageError):
    """A backup cannot be taken, or a backup file is not fit to restore."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a backup holds, written beside it as ``<backup>.json``."""

    format: int
    werk_version: str
    created_at: float
    schema_version: int
    size: int
    sha256: str
    counts: dict[str, int] = field(default_factory=dict)


def manifest_path(path: Path) -> Path:
    """Return the manifest file of the backup at ``path``."""
    return path.with_name(path.name + ".json")


def utc_stamp(now: float) -> str:
    """Return ``now`` as a sortable UTC time with milliseconds: ``20261129T181649.122Z``."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    return f"{stamp}.{int(now * 1000) % 1000:03d}Z"


def backup_name(now: float) -> str:
    """Return a sortable file name for a backup taken at ``now``."""
    return f"werk-{utc_stamp(now)}{SUFFIX}"


def kept_path(data_dir: Path, now: float) -> Path:
    """Return where :func:`restore` keeps the store it replaces at ``now``:
    ``werk.sqlite3.replaced-20261129T181649.122Z`` (the name's start is what it always was,
    so ``werk.sqlite3.replaced-*`` still finds old and new ones, and never a backup's
    ``werk-*.sqlite3`` that pruning deletes); ``-2``, ``-3``... are added rather than
    overwrite a store kept earlier in the same millisecond."""
    base = data_dir / f"{schema.DB_NAME}.replaced-{utc_stamp(now)}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Return the row counts a manifest records (queued, working, sets, counters)."""
    one = conn.execute
    result = {
        "jobs": one("SELECT count(*) FROM jobs").fetchone()[0],
        "working": one("SELECT count(*) FROM working").fetchone()[0],
    }
    result["queued"] = result["jobs"] - result["working"]
    for name in ("scheduled", "retries", "dead"):
        result[name] = one("SELECT count(*) FROM sets WHERE name = ?", (name,)).fetchone()[0]
    row = one("SELECT processed, failures FROM counters WHERE key = 'total'").fetchone()
    result["processed"], result["failures"] = (row[0], row[1]) if row else (0, 0)
    return result


def backup(
    data_dir: Path, target: Path, progress: StepCallback = _no_progress
) -> tuple[Path, Manifest]:
    """Take a consistent backup of the store in ``data_dir``.

    Args:
        data_dir: the store's data directory (the server may be running).
        target: a directory (a timestamped file is created in it) or a file path.
        progress: told how the copy and the checksum go.

    Returns:
        The backup's path and its manifest.

    Raises:
        BackupError: there is no store, or the copy failed.
    """
    source = data_dir / schema.DB_NAME
    if not source.is_file():
        raise BackupError(f"no Werk store at {source}")
    now = time.time()
    path = target / backup_name(now) if target.is_dir() else target
    _check_target(path, data_dir)
    try:
        make_dir(path.parent, "backup directory")
    except DirectoryError as exc:
        raise BackupError(str(exc)) from exc
    partial = path.with_name(path.name + ".partial")
    try:
        expected = source.stat().st_size
        progress("copying the database", 0, expected)
        snapshot_counts, version = _copy(source, partial)
        progress("copying the database", expected, expected)
        schema.fsync(partial)
        partial.replace(path)
        partial = path  # from here a failure leaves a backup without a manifest: unusable
        schema.fsync_dir(path.parent)
        manifest = Manifest(
            MANIFEST_FORMAT,
            __version__,
            now,
            version,
            path.stat().st_size,
            sha256(path, progress),
            snapshot_counts,
        )
        _write_atomic(manifest_path(path), json.dumps(asdict(manifest), indent=2) + "\n")
    except (OSError, sqlite3.Error) as exc:
        _remove_partial(partial, manifest_path(path))
        raise BackupError(f"backup of {source} to {path} failed: {exc}") from exc
    return path, manifest


def _remove_partial(partial: Path, manifest: Path) -> None:
    """Delete what a failed backup left: the copy (``.partial``, or the backup renamed
    into place when its manifest could not be written), the files SQLite keeps beside it
    while writing (``-journal``, ``-wal``, ``-shm``), and the manifest's ``.partial``."""
    for suffix in ("", "-journal", "-wal", "-shm"):
        partial.with_name(partial.name + suffix).unlink(missing_ok=True)
    manifest.with_name(manifest.name + ".partial").unlink(missing_ok=True)


def _check_target(path: Path, data_dir: Path) -> None:
    """Refuse a backup path whose replacement would destroy something: anything but a
    regular file (run as root, ``-o /dev/full`` replaced the device with the backup), or
    a file of the store itself (``-o <data dir>/werk.sqlite3`` replaced the live database
    under a running server)."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise BackupError(f"{path} exists and is not a regular file: give a directory or a file")
    own = (schema.DB_NAME, schema.LOCK_NAME)
    if path.name.startswith(own) and path.parent.resolve() == data_dir.resolve():
        raise BackupError(f"{path} is a file of the store itself: write the backup elsewhere")


def _copy(source: Path, dest: Path) -> tuple[dict[str, int], int]:
    """Copy with the online backup API in one step (one read transaction: consistent)."""
    dest.unlink(missing_ok=True)
    src = sqlite3.connect(source, isolation_level=None)
    try:
        src.execute("PRAGMA busy_timeout = 5000")
        src.execute("PRAGMA query_only = 1")
        dst = sqlite3.connect(dest, isolation_level=None)
        try:
            src.backup(dst)
            # A standalone file: no -wal or -shm companion needed to read it.
            dst.execute("PRAGMA journal_mode = DELETE").fetchall()
            version = dst.execute("PRAGMA user_version").fetchone()[0]
            return counts(dst), version
        finally:
            dst.close()
    finally:
        src.close()


def sha256(path: Path, progress: StepCallback = _no_progress) -> str:
    """Return the hex SHA-256 of a file (``progress``: phase ``checksum``)."""
    digest = hashlib.sha256()
    total, done = path.stat().st_size, 0
    progress("checksum", 0, total)
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            done += len(chunk)
            progress("checksum", done, total)
    return digest.hexdigest()


def read_manifest(path: Path) -> Manifest:
    """Read the manifest of the backup at ``path``.

    Raises:
        BackupError: the manifest is missing or unreadable.
    """
    where = manifest_path(path)
    try:
        data: dict[str, Any] = json.loads(where.read_text())
        manifest = Manifest(**data)
    except FileNotFoundError as exc:
        raise BackupError(f"{where} is missing: the backup is incomplete or not Werk's") from exc
    except (OSError, ValueError, TypeError) as exc:
        raise BackupError(f"{where} is not a valid backup manifest: {exc}") from exc
    except RecursionError as exc:  # a manifest is a flat object: this is not one
        raise BackupError(f"{where} is not a valid backup manifest: nested too deeply") from exc
    wrong = _wrong_field(manifest)
    if wrong:
        raise BackupError(f"{where} is not a valid backup manifest: {wrong}")
    return manifest


def _wrong_field(manifest: Manifest) -> str | None:
    """Name the first field of a manifest with the wrong type or value (``counts="x"`` was
    an AttributeError traceback, ``format: 99`` was restored as if it were format 1)."""
    if manifest.format != MANIFEST_FORMAT or type(manifest.format) is not int:
        return f"format {manifest.format!r} is not {MANIFEST_FORMAT} (made by another Werk?)"
    numbers = {"schema_version": manifest.schema_version, "size": manifest.size}
    for name, value in numbers.items():
        if type(value) is not int or value < 0:
            return f"{name} must be a whole number, not {value!r}"
    if not isinstance(manifest.created_at, int | float) or isinstance(manifest.created_at, bool):
        return f"created_at must be a number, not {manifest.created_at!r}"
    for name, text in (("werk_version", manifest.werk_version), ("sha256", manifest.sha256)):
        if not isinstance(text, str):
            return f"{name} must be a string, not {text!r}"
    counts = manifest.counts
    if not isinstance(counts, dict) or not all(type(n) is int for n in counts.values()):
        return f"counts must be an object of whole numbers, not {counts!r}"
    return None


def verify(path: Path, progress: StepCallback = _no_progress) -> Manifest:
    """Check that the backup at ``path`` is complete, intact and restorable by this Werk
    (``progress``: the checksum, then the integrity check).

    Raises:
        BackupError: naming what is wrong (checksum, integrity, identity, version).
    """
    if path.is_dir():
        raise BackupError(f"backup {path} is a directory: give the backup's .sqlite3 file")
    if not path.is_file():
        raise BackupError(f"backup {path} does not exist")
    manifest = read_manifest(path)
    size = path.stat().st_size
    if size != manifest.size:
        raise BackupError(
            f"backup {path} is {size} bytes, its manifest says {manifest.size}: truncated?"
        )
    if sha256(path, progress) != manifest.sha256:
        raise BackupError(f"backup {path} does not match its manifest's SHA-256: corrupt")
    progress("integrity check", 0, size)
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            _check_database(conn, path, manifest)
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"backup {path} is not a readable SQLite database: {exc}") from exc
    return manifest


def _check_database(conn: sqlite3.Connection, path: Path, manifest: Manifest) -> None:
    problems = [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
    if problems != ["ok"]:
        raise BackupError(f"backup {path} failed its integrity check: {'; '.join(problems[:5])}")
    if conn.execute("PRAGMA application_id").fetchone()[0] != schema.APPLICATION_ID:
        raise BackupError(f"backup {path} is an SQLite database but not a Werk store")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version != manifest.schema_version:
        raise BackupError(f"backup {path} has schema {version}, manifest {manifest.schema_version}")
    if version > len(schema.MIGRATIONS):
        raise BackupError(
            f"backup {path} has schema version {version}; this Werk knows up to"
            f" {len(schema.MIGRATIONS)}: upgrade Werk first"
        )


def store_counts(data_dir: Path) -> dict[str, int] | None:
    """Return the counts of the store in ``data_dir``, or ``None`` when it has no data.

    Raises:
        BackupError: the existing store cannot be read.
    """
    path = data_dir / schema.DB_NAME
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            return counts(conn) if tables else None
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"the existing store {path} cannot be read: {exc}") from exc


def is_empty(found: dict[str, int] | None) -> bool:
    """Return True when a store holds no jobs, sets or counters worth keeping."""
    return found is None or not any(found.values())


def restore(path: Path, data_dir: Path, progress: StepCallback = _no_progress) -> Path | None:
    """Replace the store in ``data_dir`` with the backup at ``path`` (call :func:`verify`
    first; the caller holds the directory lock). The store that was there is kept beside
    it (:func:`kept_path`), whose path is returned. The file is copied in
    chunks of :data:`CHUNK` bytes (``progress``: phase ``copying``).

    Raises:
        BackupError: the copy failed (the old store is then left in place).
    """
    try:
        make_dir(data_dir, "data directory")
    except DirectoryError as exc:
        raise BackupError(str(exc)) from exc
    live = data_dir / schema.DB_NAME
    staged = data_dir / (schema.DB_NAME + ".restoring")
    kept: Path | None = None
    try:
        _copy_file(path, staged, progress)
        schema.fsync(staged)
        if live.exists():
            _checkpoint(live)
            kept = kept_path(data_dir, time.time())
            live.replace(kept)
        for suffix in ("-wal", "-shm"):
            (data_dir / (schema.DB_NAME + suffix)).unlink(missing_ok=True)
        staged.replace(live)
        schema.fsync_dir(data_dir)
    except (OSError, sqlite3.Error) as exc:
        staged.unlink(missing_ok=True)
        raise BackupError(f"restore into {data_dir} failed: {exc}") from exc
    return kept


def _copy_file(source: Path, dest: Path, progress: StepCallback) -> None:
    total, done = source.stat().st_size, 0
    progress("copying", 0, total)
    with source.open("rb") as reader, dest.open("wb") as writer:
        while chunk := reader.read(CHUNK):
            writer.write(chunk)
            done += len(chunk)
            progress("copying", done, total)


def _checkpoint(live: Path) -> None:
    """Fold the old store's WAL into its file, so the kept copy is complete on its own."""
    conn = sqlite3.connect(live, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.close()


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    schema.fsync(partial)
    partial.replace(path)
    schema.fsync_dir(path.parent)


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` backups (and manifests) in ``directory``."""
    backups = sorted(directory.glob(f"werk-*{SUFFIX}"))
    removed = backups[: max(len(backups) - keep, 0)]
    for path in removed:
        path.unlink(missing_ok=True)
        manifest_path(path).unlink(missing_ok=True)
    return removed
