"""The SQLite store's files: directory lock, integrity checks, schema and named migrations.

Opening refuses, with :class:`~werk.errors.StoreCorruptError` naming the file, anything that
is not an intact Werk database; it never resets data. Each migration runs in one transaction
together with the row that records it and the new ``PRAGMA user_version``.

Table layout (docs/internals/storage.md explains why):

- ``jobs(id, queue, priority, jid, jobtype, reserve_for, enqueued_at, body)``: every queued
  *and* every reserved job; ``id`` is assigned in commit order and is the FIFO order.
- ``working(jid, job_id, wid, reserved_at, expires_at)``: one row per reservation, pointing
  at its ``jobs`` row; a ``jobs`` row without one is queued.
- ``sets(name, jid, score, queue, jobtype, priority, reserve_for, body)``: the scheduled,
  retries and dead sets, unique by ``(name, jid)``, indexed by ``(name, score, jid)``.
- ``queues(name, paused)``, ``counters(key, processed, failures)`` (``key`` is ``total`` or
  a UTC day), ``processes(wid, record)`` and ``migrations(name, applied_at)``.
- ``locks``, ``records``, ``counts``, ``limiters``, ``limit_units`` (migration
  ``0002_coordination``): see :mod:`werk.storage.sqlite.coord`.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from pathlib import Path
from typing import Final

from werk.errors import StorageError, StoreCorruptError
from werk.paths import DirectoryError

DB_NAME: Final = "werk.sqlite3"
LOCK_NAME: Final = "werk.lock"
APPLICATION_ID: Final = 0x5745524B  # "WERK", stored in the database header
SQLITE_MAGIC: Final = b"SQLite format 3\x00"
DURABILITY: Final = {"fsync": "FULL", "os": "NORMAL"}
"""Werk's durability modes and the ``PRAGMA synchronous`` each one sets (WAL mode)."""

MIGRATIONS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    (
        "0001_initial",
        (
            "CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)",
            "CREATE TABLE queues (name TEXT PRIMARY KEY, paused INTEGER NOT NULL DEFAULT 0)"
            " WITHOUT ROWID",
            "CREATE TABLE jobs (id INTEGER PRIMARY KEY, queue TEXT NOT NULL,"
            " priority INTEGER NOT NULL, jid TEXT NOT NULL, jobtype TEXT NOT NULL,"
            " reserve_for INTEGER NOT NULL, enqueued_at REAL NOT NULL, body BLOB NOT NULL)",
            "CREATE TABLE working (jid TEXT PRIMARY KEY, job_id INTEGER NOT NULL,"
            " wid TEXT NOT NULL, reserved_at REAL NOT NULL, expires_at REAL NOT NULL)"
            " WITHOUT ROWID",
            "CREATE TABLE sets (name TEXT NOT NULL, jid TEXT NOT NULL, score REAL NOT NULL,"
            " queue TEXT NOT NULL, jobtype TEXT NOT NULL, priority INTEGER NOT NULL,"
            " reserve_for INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (name, jid))",
            "CREATE INDEX sets_by_score ON sets (name, score, jid)",
            "CREATE TABLE counters (key TEXT PRIMARY KEY, processed INTEGER NOT NULL,"
            " failures INTEGER NOT NULL) WITHOUT ROWID",
            "CREATE TABLE processes (wid TEXT PRIMARY KEY, record TEXT NOT NULL) WITHOUT ROWID",
        ),
    ),
    (
        "0002_coordination",
        (
            "CREATE TABLE locks (key TEXT PRIMARY KEY, owner TEXT NOT NULL,"
            " expires_at REAL NOT NULL) WITHOUT ROWID",
            "CREATE INDEX locks_by_expiry ON locks (expires_at)",
            "CREATE TABLE records (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL)"
            " WITHOUT ROWID",
            "CREATE INDEX records_by_expiry ON records (expires_at) WHERE expires_at IS NOT NULL",
            "CREATE TABLE counts (key TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,"
            " PRIMARY KEY (key, name)) WITHOUT ROWID",
            "CREATE TABLE limiters (name TEXT PRIMARY KEY, kind TEXT NOT NULL,"
            " lim INTEGER NOT NULL, period REAL NOT NULL, start REAL NOT NULL,"
            " level REAL NOT NULL, seq INTEGER NOT NULL) WITHOUT ROWID",
            "CREATE TABLE limit_units (name TEXT NOT NULL, unit TEXT NOT NULL,"
            " score REAL NOT NULL, PRIMARY KEY (name, unit)) WITHOUT ROWID",
            "CREATE INDEX limit_units_by_score ON limit_units (name, score)",
        ),
    ),
)


class DirectoryLock:
    """An exclusive ``flock`` on ``<directory>/werk.lock``: one server per data directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock without waiting.

        Raises:
            StorageError: another process (or store) holds it.
            DirectoryError: the lock file cannot be created (an ``OSError`` too).
        """
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # a read-only or virtual directory (/proc), no permission
            raise DirectoryError(
                f"cannot use the data directory {self.path.parent}: cannot create its lock"
                f" file {self.path.name}: {exc.strerror or exc}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise StorageError(
                f"data directory {self.path.parent} is in use by another Werk server"
                f" (lock {self.path} is held)"
            ) from exc
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (closing the file releases it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def connect(path: Path, synchronous: str) -> sqlite3.Connection:
    """Open one connection in autocommit mode with Werk's pragmas."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    return conn


def open_error(path: Path, exc: sqlite3.Error) -> StorageError:
    """Name what went wrong while opening: a damaged file, or some other failure."""
    name = getattr(exc, "sqlite_errorname", "")
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return StoreCorruptError(f"{path} is corrupt or truncated; refusing to start: {exc}")
    return StorageError(f"cannot open {path}: {exc}")


def check_header(path: Path) -> None:
    """Refuse a file that does not start like an SQLite database, and an empty one.

    Werk never leaves an empty store of its own (:func:`create` builds a new one beside
    it and renames it into place), so a 0-byte ``werk.sqlite3`` is damage (a truncation, a
    botched copy) unless a WAL beside it holds the data, which SQLite then reads.
    """
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        return
    if not head and not _wal_has_data(path):
        raise StoreCorruptError(
            f"{path} is empty (0 bytes, no WAL), so it is not a Werk store (Werk never leaves"
            " an empty one); refusing to start. Restore a backup with `werk restore`, or"
            " delete the file to start with an empty store."
        )
    if head and head != SQLITE_MAGIC:
        raise StoreCorruptError(
            f"{path} is not an SQLite database (bad file header); refusing to start."
            " Move it aside or restore a backup."
        )


def _wal_has_data(path: Path) -> bool:
    try:
        return path.with_name(path.name + "-wal").stat().st_size > 0
    except FileNotFoundError:
        return False


def create(path: Path) -> None:
    """Create a new, empty Werk store at ``path`` unless a file is there already.

    The store is built at ``<path>.new`` (WAL mode, every migration), closed, fsynced and
    renamed into place, so a crash part-way leaves no file at ``path`` (the next start
    replaces the leftover ``.new``) and :func:`check_header` may refuse every empty one.
    """
    if path.exists():
        return
    new = path.with_name(path.name + ".new")
    files = (new, new.with_name(new.name + "-wal"), new.with_name(new.name + "-shm"))
    for leftover in files:  # of a start that crashed while creating
        leftover.unlink(missing_ok=True)
    try:
        conn = sqlite3.connect(new, isolation_level=None)
        try:
            prepare(conn, new)
        finally:
            conn.close()  # the last connection checkpoints the WAL into the file, removes it
        fsync(new)
        new.replace(path)
    except BaseException:
        for partial in files:
            partial.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync(path: Path) -> None:
    """Flush a file's data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (a rename or a new file in it) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prepare(conn: sqlite3.Connection, path: Path) -> None:
    """Turn on WAL, verify integrity and Werk's identity, then apply pending migrations.

    Raises:
        StoreCorruptError: the file is damaged, truncated or another application's.
        StorageError: the schema is newer than this version of Werk knows.
    """
    try:
        conn.execute("PRAGMA journal_mode = WAL").fetchall()
        problems = [row[0] for row in conn.execute("PRAGMA quick_check").fetchall()]
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise StoreCorruptError(f"{path} is corrupt or not a database: {exc}") from exc
    if problems != ["ok"]:
        detail = "; ".join(str(p) for p in problems[:5])
        raise StoreCorruptError(f"{path} failed its integrity check: {detail}")
    if app_id != APPLICATION_ID and (app_id != 0 or tables > 0):
        raise StoreCorruptError(f"{path} is an SQLite database but not a Werk database")
    if version > len(MIGRATIONS):
        raise StorageError(
            f"{path} has schema version {version}; this Werk knows up to {len(MIGRATIONS)}"
        )
    for number, (name, statements) in enumerate(MIGRATIONS, start=1):
        if number > version:
            _migrate(conn, number, name, statements)


def _migrate(conn: sqlite3.Connection, number: int, name: str, statements: tuple[str, ...]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in statements:
            conn.execute(statement)
        conn.execute("INSERT INTO migrations (name, applied_at) VALUES (?, ?)", (name, time.time()))
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {number}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
