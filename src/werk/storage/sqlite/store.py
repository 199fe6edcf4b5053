"""The embedded SQLite store: one file in WAL mode, group commit, queues indexed in memory.

Only this process writes the database (``werk.lock`` ensures it), so the fetch order of
every queue (row ids, no bodies), the reservations, the counters and the set sizes live in
memory and SQLite is asked only for bodies and set listings. Writes go through the group
commit of :mod:`werk.storage.sqlite.writer` (its thread; in ``os`` mode the loop for a small
batch while commits are fast); ENQUEUE and ADD return after their commit (fsynced in
``fsync`` mode), FETCH and ACK do not wait for theirs. Connections: the writer's (the writer
thread, or the loop while the thread is idle, never both at once), the loop's (short
indexed reads, e.g. a fetched body), a reader thread's (listings that may scan) and, in
``os`` mode, the checkpoints' (the writer thread). Tables: :mod:`werk.storage.sqlite.schema`;
docs/internals/storage.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from werk.errors import StorageError
from werk.paths import make_dir
from werk.storage.base import (
    AvailableCallback,
    Counters,
    DayCount,
    Entry,
    Placement,
    Process,
    Reservation,
    Scored,
    SetFilter,
    SetName,
    Store,
    WaitingPredicate,
)
from werk.storage.sqlite import ops, schema
from werk.storage.sqlite.batch import Batch
from werk.storage.sqlite.coord import CoordMixin
from werk.storage.sqlite.memory import QueueIndex, Reservations, Tally
from werk.storage.sqlite.writer import INLINE, Writer

T = TypeVar("T")
log = logging.getLogger("werk.storage.sqlite.store")


@dataclass
class _Loaded:
    """What :meth:`SqliteStore.open` reads from disk before the loop takes over."""

    conns: tuple[sqlite3.Connection, sqlite3.Connection, sqlite3.Connection]
    first_id: int
    queues: QueueIndex = field(default_factory=QueueIndex)
    paused: set[str] = field(default_factory=set)
    reserved: Reservations = field(default_factory=Reservations)
    tally: Tally = field(default_factory=Tally)
    set_sizes: dict[str, int] = field(default_factory=dict)
    processes: dict[str, Process] = field(default_factory=dict)
    checkpoints: sqlite3.Connection | None = None


class SqliteStore(CoordMixin):
    """The embedded :class:`~werk.storage.base.Store` kept in ``<directory>/werk.sqlite3``.

    Args:
        directory: the data directory, created if missing.
        durability: ``fsync`` (default): a write is acknowledged once its commit is fsynced
            (``PRAGMA synchronous = FULL``); ``os``: once the commit reached the operating
            system (``NORMAL`` in WAL mode: a crash of Werk loses nothing, a power loss may
            lose the last commits, neither corrupts). See docs/storage.md.
    """

    exclusive = True
    """One server at a time holds the data directory (``werk.lock``): when it starts, no
    worker process can be connected to another (:meth:`Processes.start
    <werk.manager.processes.Processes.start>` forgets every stored one)."""

    def __init__(self, directory: Path, *, durability: str = "fsync") -> None:
        if durability not in schema.DURABILITY:
            raise ValueError(f"durability must be one of {', '.join(schema.DURABILITY)}")
        super().__init__()
        self.directory = Path(directory)
        self.path = self.directory / schema.DB_NAME
        self.durability = durability
        """The commit mode in force (INFO, the web UI and the startup log show it)."""
        self._synchronous = schema.DURABILITY[durability]
        self._lock = schema.DirectoryLock(self.directory / schema.LOCK_NAME)
        self._reserved = Reservations()
        self._tally = Tally()
        self._set_sizes: dict[str, int] = {}
        self._processes: dict[str, Process] = {}

    @property
    def commits(self) -> int:
        """How many transactions the writer committed since :meth:`open`."""
        return 0 if self._writer is None else self._writer.commits

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        """Lock the directory, check and migrate the file, rebuild the in-memory state.

        Raises:
            StoreCorruptError: the file is corrupt, truncated or not a Werk database.
            StorageError: another server holds the directory, or it cannot be opened.
        """
        if self._writer is not None:
            raise StorageError(f"{self.path} is already open")
        loop = asyncio.get_running_loop()
        loaded = await asyncio.to_thread(self._open_sync)
        write_conn, self._conn, self._reader_conn = loaded.conns
        self._queues, self._paused = loaded.queues, loaded.paused
        self._reserved, self._tally = loaded.reserved, loaded.tally
        self._set_sizes, self._processes = loaded.set_sizes, loaded.processes
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="werk-sqlite-reader")
        inline = INLINE.get(self.durability)
        self._writer = Writer(write_conn, loop, loaded.first_id, loaded.checkpoints, inline)
        self._writer.start()

    def _open_sync(self) -> _Loaded:
        make_dir(self.directory, "data directory")
        self._lock.acquire()
        conns: list[sqlite3.Connection] = []
        try:
            schema.check_header(self.path)
            schema.create(self.path)
            conns.append(schema.connect(self.path, self._synchronous))
            schema.prepare(conns[0], self.path)
            for _ in range(2):
                conns.append(schema.connect(self.path, self._synchronous))
                conns[-1].execute("PRAGMA query_only = 1")
                conns[-1].create_function("werk_match", 2, ops.glob_match, deterministic=True)
            loaded = _load(conns[0], (conns[0], conns[1], conns[2]))
            if self.durability in INLINE:
                # The loop may commit (see writer.INLINE); checkpoints (which fsync and copy
                # pages) stay off it, on the writer thread with a connection of their own.
                conns[0].execute("PRAGMA wal_autocheckpoint = 0")
                loaded.checkpoints = schema.connect(self.path, self._synchronous)
            return loaded
        except BaseException as exc:
            for conn in conns:
                conn.close()
            self._lock.release()
            if isinstance(exc, sqlite3.Error):
                raise schema.open_error(self.path, exc) from exc
            raise

    async def close(self) -> None:
        """Commit every accepted write, stop the threads, close files, release the lock."""
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        await writer.stop()
        if self._reader is not None:
            self._reader.shutdown(wait=True)
            self._reader = None
        for conn in (self._conn, self._reader_conn):
            if conn is not None:
                conn.close()
        self._conn = self._reader_conn = None
        self._lock.release()

    def on_available(
        self, callback: AvailableCallback, waiting: WaitingPredicate | None = None
    ) -> None:
        """Register a callback for queues where jobs may have become fetchable; with
        ``waiting``, a PUSH to a queue a FETCH waits on is shown before its fsync ends."""
        self._callbacks.append(callback)
        if waiting is not None:
            self._waiting.append(waiting)

    # -- helpers ------------------------------------------------------------------

    def _moved(self, name: SetName) -> Callable[[ops.Moved], None]:
        """A ``done`` callback: jobs left set ``name`` for their queues."""

        def done(moved: ops.Moved) -> None:
            self._set_sizes[name] -= len(moved)
            for job_id, queue, priority in moved:
                self._queues.push(queue, priority, job_id)
            if moved:
                self._notify({queue for _, queue, _ in moved})

        return done

    def _grow(self, name: str) -> Callable[[int], None]:
        def done(added: int) -> None:
            self._set_sizes[name] += added

        return done

    # -- reservations ------------------------------------------------------------------

    async def reservation(self, jid: str) -> Reservation | None:
        """Return the reservation held for ``jid``."""
        return self._reserved.get(jid)

    async def ack(self, jid: str, now: float) -> Reservation | None:
        """Release a reservation and count it processed (not awaiting the commit)."""
        writer = self._open_writer()
        held = self._reserved.pop(jid)
        if held is None:
            return None
        res, job_id = held
        day = self._tally.day(now)
        self._tally.add(day, 1, 0)
        writer.release(jid, job_id, ("total", day), 1)
        return res

    async def fail(self, jid: str, now: float, placement: Placement | None) -> bool:
        """Release a reservation as failed and place the job (durable on return)."""
        return await self._finish(jid, now, placement, None)

    async def expire(self, jid: str, now: float, placement: Placement | None) -> bool:
        """Like :meth:`fail`, only while the reservation's expiry is still ``<= now``."""
        return await self._finish(jid, now, placement, now)

    async def _finish(
        self, jid: str, now: float, placement: Placement | None, due: float | None
    ) -> bool:
        writer = self._open_writer()
        res = self._reserved.get(jid)
        if res is None or (due is not None and res.expires_at > due):
            return False
        held = self._reserved.pop(jid)
        assert held is not None
        job_id = held[1]
        day = self._tally.day(now)

        def done(added: int) -> None:
            self._tally.add(day, 1, 1)
            if placement is not None:
                self._set_sizes[placement.set] += added

        def undo() -> None:
            self._reserved.put(*held)

        await writer.call(lambda b: ops.fail(b, jid, job_id, ("total", day), placement), done, undo)
        return True

    async def extend(self, jid: str, expires_at: float) -> bool:
        """Move a reservation's expiry later; ``False`` when ``jid`` holds none."""
        writer = self._open_writer()
        held = self._reserved.pop(jid)
        if held is None:
            return False
        res, job_id = held
        if expires_at <= res.expires_at:
            self._reserved.put(res, job_id)
            return True
        self._reserved.put(replace(res, expires_at=expires_at), job_id)
        await writer.call(lambda b: ops.extend(b, jid, expires_at))
        return True

    async def expired(self, now: float, limit: int) -> list[Reservation]:
        """Return up to ``limit`` reservations whose expiry is at or before ``now``."""
        return self._reserved.due(now, limit)

    async def working(self, offset: int, limit: int) -> list[Reservation]:
        """Return reservations ordered by expiry, after ``offset``."""
        return self._reserved.ordered()[offset : offset + limit]

    async def working_size(self) -> int:
        """Return the number of reservations."""
        return len(self._reserved)

    # -- time-ordered sets -------------------------------------------------------------

    async def add(self, name: SetName, items: Sequence[Scored]) -> None:
        """Add or replace entries of a set; durable on return."""
        if items:
            items = list(items)
            await self._open_writer().call(lambda b: ops.add(b, name, items), self._grow(name))

    async def move_due(self, name: SetName, now: float, limit: int) -> int:
        """Move up to ``limit`` due entries into their queues."""
        call = self._open_writer().call
        fn: Callable[[Batch], ops.Moved] = lambda b: ops.move_due(b, name, now, limit)  # noqa: E731
        moved = await call(fn, self._moved(name), rows=limit)
        return len(moved)

    async def next_due(self, name: SetName) -> float | None:
        """Return the lowest score of a set (an index lookup)."""
        return self._guard_read(lambda conn: ops.next_due(conn, name))

    async def set_size(self, name: SetName) -> int:
        """Return the number of entries in a set (kept in memory)."""
        self._open_writer()
        return self._set_sizes[name]

    async def set_page(
        self,
        name: SetName,
        offset: int,
        limit: int,
        *,
        reverse: bool = False,
        where: SetFilter | None = None,
    ) -> list[Scored]:
        """Return a page of a set ordered by score, filtered by ``where``."""
        return await self._read(lambda c: ops.set_page(c, name, offset, limit, reverse, where))

    async def set_count(self, name: SetName, where: SetFilter) -> int:
        """Return how many entries of a set match ``where``."""
        return await self._read(lambda conn: ops.set_count(conn, name, where))

    async def set_get(self, name: SetName, jid: str) -> Scored | None:
        """Return the entry of ``jid`` in a set."""
        return self._guard_read(lambda conn: ops.set_get(conn, name, jid))

    async def set_match(self, name: SetName, pattern: str | None) -> list[Scored]:
        """Return every entry whose body matches a Redis-style glob."""
        return await self._read(lambda conn: ops.set_match(conn, name, pattern))

    async def set_remove(self, name: SetName, jids: Sequence[str]) -> list[str]:
        """Remove the listed entries in one transaction; return the jids removed."""
        jids = list(jids)
        if not jids:
            return []
        fn: Callable[[Batch], list[str]] = lambda b: ops.set_remove(b, name, jids)  # noqa: E731
        grow = self._grow(name)
        return await self._open_writer().call(fn, lambda gone: grow(-len(gone)), rows=len(jids))

    async def set_move(
        self, name: SetName, jids: Sequence[str], to: SetName, score: float
    ) -> list[str]:
        """Move the listed entries to another set with a new score; return the jids moved."""
        jids = list(jids)
        if not jids:
            return []

        def done(result: tuple[list[str], int]) -> None:
            self._set_sizes[name] -= len(result[0])
            self._set_sizes[to] += result[1]

        call = self._open_writer().call
        moved, _ = await call(
            lambda b: ops.set_move(b, name, jids, to, score), done, rows=len(jids)
        )
        return moved

    async def requeue(self, name: SetName, jids: Sequence[str] | None, now: float) -> int:
        """Move the listed entries (``None``: all) into their queues."""
        jids = None if jids is None else list(jids)
        call = self._open_writer().call
        fn: Callable[[Batch], ops.Moved] = lambda b: ops.requeue(b, name, jids, now)  # noqa: E731
        moved = await call(fn, self._moved(name))
        return len(moved)

    async def remove_before(self, name: SetName, now: float, limit: int) -> int:
        """Delete up to ``limit`` entries with ``score <= now``."""
        call = self._open_writer().call
        fn: Callable[[Batch], int] = lambda b: ops.remove_before(b, name, now, limit)  # noqa: E731
        return await call(fn, lambda n: self._grow(name)(-n))

    # -- counters and processes --------------------------------------------------------

    async def counters(self) -> Counters:
        """Return the lifetime counters."""
        return Counters(self._tally.processed, self._tally.failures)

    async def history(self, days: Sequence[str]) -> list[DayCount]:
        """Return the counts of the listed UTC days."""
        return self._tally.history(days)

    async def put_process(self, process: Process) -> None:
        """Create or replace a worker process record (durable on return)."""
        copy = _copy_process(process)

        def done(_: None) -> None:
            self._processes[copy.wid] = copy

        await self._open_writer().call(lambda b: ops.put_process(b, copy), done)

    async def get_process(self, wid: str) -> Process | None:
        """Return a copy of a worker process record."""
        found = self._processes.get(wid)
        return None if found is None else _copy_process(found)

    async def processes(self) -> list[Process]:
        """Return every known worker process."""
        return [_copy_process(p) for p in self._processes.values()]

    async def delete_process(self, wid: str) -> None:
        """Forget a worker process."""

        def done(_: None) -> None:
            self._processes.pop(wid, None)

        await self._open_writer().call(lambda b: ops.delete_process(b, wid), done)

    async def flush(self) -> None:
        """Delete every job, reservation, set entry, queue, pause and counter, and every
        lock, record and limiter."""
        writer = self._open_writer()
        self._queues, self._paused, self._reserved = QueueIndex(), set(), Reservations()
        self._bodies.clear()

        def done(_: None) -> None:
            self._tally = Tally()
            self._set_sizes = dict.fromkeys(self._set_sizes, 0)

        await writer.call(ops.flush, done)


def _load(conn: sqlite3.Connection, conns: Any) -> _Loaded:
    """Rebuild the in-memory state from the tables (at open, off the loop)."""
    first_id = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM jobs").fetchone()[0]
    loaded = _Loaded(conns, first_id)
    for name, paused in conn.execute("SELECT name, paused FROM queues"):
        loaded.queues.add(name)
        if paused:
            loaded.paused.add(name)
    rows = conn.execute(
        "SELECT w.jid, w.job_id, w.wid, w.reserved_at, w.expires_at, j.queue, j.jobtype,"
        " j.priority, j.reserve_for, j.body, j.enqueued_at"
        " FROM working w JOIN jobs j ON j.id = w.job_id"
    )
    for jid, job_id, wid, at, until, queue, jobtype, prio, reserve_for, body, enq in rows:
        entry = Entry(jid, queue, jobtype, prio, reserve_for, bytes(body))
        loaded.reserved.put(Reservation(entry, enq, at, until, wid), job_id)
    reserved = {job_id for _, job_id in loaded.reserved.items()}
    for job_id, queue, priority in conn.execute("SELECT id, queue, priority FROM jobs ORDER BY id"):
        if job_id not in reserved:
            loaded.queues.push(queue, priority, job_id)
    for key, processed, failures in conn.execute("SELECT key, processed, failures FROM counters"):
        if key == "total":
            loaded.tally.processed, loaded.tally.failures = processed, failures
        else:
            loaded.tally.days[key] = [processed, failures]
    loaded.set_sizes = dict.fromkeys(("scheduled", "retries", "dead"), 0)
    for name, size in conn.execute("SELECT name, count(*) FROM sets GROUP BY name"):
        loaded.set_sizes[name] = size
    for (record,) in conn.execute("SELECT record FROM processes"):
        process = Process(**json.loads(record))
        loaded.processes[process.wid] = process
    return loaded


_: type[Store] = SqliteStore
__all__ = ["SqliteStore"]


def _copy_process(process: Process) -> Process:
    """Return a copy of a process record that shares no list or dict with it."""
    links = {server: list(link) for server, link in process.links.items()}
    return replace(process, labels=list(process.labels), links=links)
