"""The queue half of the SQLite store: enqueue, fetch, listings, pause and removal.

Queue order lives in a :class:`~werk.storage.sqlite.memory.QueueIndex`; a job id enters it
only after its insert committed, and leaves it synchronously on the loop when it is
fetched or claimed for deletion, so no two callers can take the same job.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from werk.errors import StorageError
from werk.storage.base import AvailableCallback, Entry, Queued, Reservation, WaitingPredicate
from werk.storage.sqlite import ops
from werk.storage.sqlite.memory import BodyCache, QueueIndex, Reservations
from werk.storage.sqlite.writer import Writer

T = TypeVar("T")
log = logging.getLogger("werk.storage.sqlite.store")

BODY_CACHE = 100_000
"""How many pushed jobs keep their entry in memory until fetched. A fetch that finds its
job here skips the SELECT, which is the costliest step of a FETCH while the writer
commits; past this many, jobs are read back from the database (memory stays bounded)."""
BODY_CACHE_BYTES = 64 * 1024 * 1024
"""And how many bytes of their bodies: 100,000 jobs of 64 KiB would hold 6.5 GB."""


def body_cache() -> BodyCache:
    """An empty cache of pushed entries, with the limits above."""
    return BodyCache(BODY_CACHE, BODY_CACHE_BYTES)


class QueueMixin:
    """State shared by the SQLite store's halves, and its queue operations."""

    path: Path
    _reserved: Reservations

    def __init__(self) -> None:
        self._writer: Writer | None = None
        self._conn: sqlite3.Connection | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._reader_conn: sqlite3.Connection | None = None
        self._queues = QueueIndex()
        self._paused: set[str] = set()
        self._callbacks: list[AvailableCallback] = []
        self._waiting: list[WaitingPredicate] = []
        self._bodies = body_cache()

    # -- helpers ------------------------------------------------------------------

    def _open_writer(self) -> Writer:
        if self._writer is None:
            raise StorageError("the SQLite store is not open")
        return self._writer

    def _loop_conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError("the SQLite store is not open")
        return self._conn

    def _guard_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a short indexed read on the loop's own connection."""
        try:
            return fn(self._loop_conn())
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite read failed: {exc}") from exc

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read that may scan on the reader thread (committed data only)."""
        if self._reader is None or self._reader_conn is None:
            raise StorageError("the SQLite store is not open")
        conn = self._reader_conn
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._reader, fn, conn)
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite read failed: {exc}") from exc

    def _notify(self, queues: Iterable[str]) -> None:
        names = list(queues)
        for callback in self._callbacks:
            try:
                callback(names)
            except Exception:
                log.exception("on_available callback failed")

    # -- queues --------------------------------------------------------------------

    async def enqueue(self, entries: Sequence[Entry], now: float) -> None:
        """Append entries to their queues; return once their commit is on disk.

        When a FETCH waits on one of their queues, the jobs are fetchable at once, while
        their rows are written and committed (the FETCH gets one without waiting for the
        writer thread, and its own writes commit after this one); the PUSH is answered
        after the fsync all the same. Should that write fail, the jobs are taken back:
        the queued ones leave the queue, and one already handed to a worker loses its
        reservation (the worker's ACK or FAIL then finds no job), as when the PUSH is
        refused.
        """
        writer = self._open_writer()
        if not entries:
            return
        batch = list(entries)
        new = {e.queue for e in batch if e.queue not in self._queues}
        queues = {e.queue for e in batch}

        def show(ids: list[int] | range, bound: bool) -> None:
            push, keep = self._queues.push, self._bodies.put
            for entry, job_id in zip(batch, ids, strict=True):
                push(entry.queue, entry.priority, job_id)
                keep(job_id, entry, now, force=not bound)
            self._notify(queues)

        if self._bodies.fits(batch) and any(waiting(queues) for waiting in self._waiting):
            # A FETCH waits: it gets the jobs now, from memory, while their rows are written
            # and committed (the loop's connection reads committed rows only, hence the
            # bound). The PUSH is still answered after the commit; a failed write takes
            # the jobs back.
            ids = writer.take_ids(len(batch))
            show(ids, bound=False)
            await writer.call(
                lambda b: ops.insert_jobs(b, batch, now, new, ids),
                undo=lambda: self._withdraw(batch, ids),
                rows=len(batch),
            )
            return
        await writer.call(
            lambda b: ops.insert_jobs(b, batch, now, new),
            lambda ids: show(ids, bound=True),
            rows=len(batch),
        )

    def _withdraw(self, batch: list[Entry], ids: range) -> None:
        """Take back jobs shown before a commit that failed."""
        for entry, job_id in zip(batch, ids, strict=True):
            self._bodies.pop(job_id)
            if self._queues.remove(entry.queue, {job_id}):
                continue
            held = self._reserved.pop(entry.jid)
            if held is None:
                continue
            if held[1] == job_id:  # handed to a worker: no job stands behind it
                self._open_writer().release(entry.jid, job_id, (), 0)
            else:
                self._reserved.put(*held)  # another job with that jid: not ours

    async def fetch(self, queues: Sequence[str], now: float, wid: str) -> Reservation | None:
        """Reserve the next job of the first non-empty unpaused queue (no commit wait)."""
        self._open_writer()
        for name in queues:
            if name in self._paused:
                continue
            while (taken := self._queues.pop(name)) is not None:
                job_id, lane = taken
                try:
                    res = self._take(job_id, now, wid)
                except sqlite3.Error as exc:
                    self._queues.unpop(name, lane, job_id)
                    raise StorageError(f"SQLite read failed: {exc}") from exc
                if res is not None:
                    return res
        return None

    def _take(self, job_id: int, now: float, wid: str) -> Reservation | None:
        cached = self._bodies.pop(job_id)
        if cached is None:
            cached = self._select(job_id)
            if cached is None:
                return None
        entry, enqueued_at = cached
        res = Reservation(entry, enqueued_at, now, now + entry.reserve_for, wid)
        previous = self._reserved.put(res, job_id)
        writer = self._open_writer()
        if previous is not None and previous[1] != job_id:
            writer.release(entry.jid, previous[1], (), 0)
        writer.reserve(entry.jid, job_id, wid, now, res.expires_at)
        return res

    def _select(self, job_id: int) -> tuple[Entry, float] | None:
        rows = (
            self._loop_conn()
            .execute(
                "SELECT jid, queue, jobtype, priority, reserve_for, body, enqueued_at"
                " FROM jobs WHERE id = ?",
                (job_id,),
            )
            .fetchall()
        )
        if not rows:
            log.error("queued job row %d is missing from %s; skipped", job_id, self.path)
            return None
        row = rows[0]
        return Entry(row[0], row[1], row[2], row[3], row[4], bytes(row[5])), row[6]

    async def queue_sizes(self) -> dict[str, int]:
        """Return the size of every known queue."""
        return {name: self._queues.size(name) for name in self._queues.names()}

    async def queue_page(self, queue: str, offset: int, limit: int) -> list[Queued]:
        """Return up to ``limit`` entries of a queue in fetch order, after ``offset``."""
        ids = list(itertools.islice(self._queues.order(queue), offset, offset + limit))
        return await self._read(lambda conn: ops.queued(conn, ids)) if ids else []

    async def queue_delete(self, queue: str, jids: Sequence[str]) -> list[str]:
        """Delete the listed jobs from a queue; return the jids of those deleted, in the
        listed order (finding them scans the jobs table once per 500 jids)."""
        writer = self._open_writer()
        wanted = list(dict.fromkeys(jids))
        if not wanted:
            return []
        found = await self._read(lambda conn: ops.find_jobs(conn, queue, wanted))
        removed = self._queues.remove(queue, set(found))
        for _, job_id in removed:
            self._bodies.pop(job_id)
        if removed:
            await writer.call(
                lambda b: ops.delete_jobs(b, [job_id for _, job_id in removed]),
                undo=lambda: self._queues.restore(queue, removed),
            )
        deleted = {found[job_id] for _, job_id in removed}
        return [jid for jid in wanted if jid in deleted]

    async def oldest_enqueued(self, queues: Sequence[str]) -> dict[str, float | None]:
        """Return the earliest ``enqueued_at`` among the heads of each queue's priorities."""
        result: dict[str, float | None] = {}
        for name in queues:
            heads = self._queues.heads(name)
            result[name] = self._oldest(heads) if heads else None
        return result

    def _oldest(self, heads: list[int]) -> float | None:
        return self._guard_read(lambda conn: ops.oldest(conn, heads))

    async def pause(self, queues: Sequence[str] | None) -> None:
        """Pause the named known queues (unknown names are ignored), or all of them."""
        asked = self._queues.names() if queues is None else list(dict.fromkeys(queues))
        names = [name for name in asked if name in self._queues]

        def done(_: None) -> None:
            self._paused.update(names)

        await self._open_writer().call(lambda b: ops.set_paused(b, names, True), done)

    async def resume(self, queues: Sequence[str] | None) -> None:
        """Resume the named queues, or every paused one."""
        names = list(self._paused if queues is None else dict.fromkeys(queues))

        def done(_: None) -> None:
            self._paused.difference_update(names)
            self._notify(names)

        await self._open_writer().call(lambda b: ops.set_paused(b, names, False), done)

    async def paused(self) -> set[str]:
        """Return the names of the paused queues."""
        return set(self._paused)

    async def remove_queues(self, queues: Sequence[str] | None) -> None:
        """Delete queues with their queued jobs and forget them (``None``: every queue)."""
        writer = self._open_writer()
        names = self._queues.names() if queues is None else list(dict.fromkeys(queues))
        names = [name for name in names if name in self._queues]
        dropped = {name: self._queues.drop(name) for name in names}
        was_paused = self._paused.intersection(names)
        self._paused.difference_update(names)
        job_ids = [job_id for pairs in dropped.values() for _, job_id in pairs]
        for job_id in job_ids:
            self._bodies.pop(job_id)

        def undo() -> None:
            for name, pairs in dropped.items():
                self._queues.restore(name, pairs)
            self._paused.update(was_paused)

        await writer.call(lambda b: ops.remove_queues(b, names, job_ids), undo=undo)
