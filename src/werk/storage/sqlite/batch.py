"""An operation submitted to the writer (:class:`Op`) and how its outcome is settled on the
loop (:func:`settle`), what it sees on the writer thread (:class:`Batch`, with the next row
ids), and the FETCH/ACK writes the loop gathers before handing them over
(:class:`Background`). The thread and its queue are in :mod:`werk.storage.sqlite.writer`.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from werk.errors import StorageError

T = TypeVar("T")
log = logging.getLogger("werk.storage.sqlite.store")


class Batch:
    """What an operation sees while it runs on the writer thread.

    ``counts`` gathers counter increments (key: ``total`` or a UTC day) and is written
    once per transaction; ``ids`` hands out new ``jobs`` row ids.
    """

    __slots__ = ("conn", "counts", "ids")

    def __init__(self, conn: sqlite3.Connection, ids: JobIds) -> None:
        self.conn = conn
        self.ids = ids
        self.counts: dict[str, list[int]] = {}

    def count(self, keys: tuple[str, ...], processed: int, failures: int) -> None:
        """Add to the counters named by ``keys``, written when the batch commits."""
        for key in keys:
            pair = self.counts.setdefault(key, [0, 0])
            pair[0] += processed
            pair[1] += failures

    def write_counts(self) -> None:
        """Upsert the gathered counter increments."""
        if self.counts:
            self.conn.executemany(
                "INSERT INTO counters (key, processed, failures) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET processed = processed + excluded.processed,"
                " failures = failures + excluded.failures",
                [(key, p, f) for key, (p, f) in self.counts.items()],
            )


class JobIds:
    """The next ``jobs.id``. The writer thread takes ids for the rows it writes, the loop
    for the rows it commits itself and for jobs it shows a waiting FETCH before their
    write; ids are unique and grow in the order they are taken (the FIFO order a restart
    rebuilds within a priority)."""

    __slots__ = ("next", "_lock")

    def __init__(self, first: int) -> None:
        self.next = first
        self._lock = threading.Lock()

    def take(self, n: int) -> range:
        """Reserve ``n`` consecutive ids (from either thread)."""
        with self._lock:
            start = self.next
            self.next += n
        return range(start, start + n)


class Background:
    """FETCH and ACK writes gathered on the loop, handed to the writer as ONE operation.

    A reservation released before its row was handed over is never written at all.
    """

    __slots__ = ("reserves", "releases", "counts")

    def __init__(self) -> None:
        self.reserves: dict[str, tuple[str, int, str, float, float]] = {}
        self.releases: list[tuple[str, int]] = []
        self.counts: dict[str, list[int]] = {}

    def __len__(self) -> int:
        return len(self.reserves) + len(self.releases)

    def absorb(self, later: Background) -> None:
        """Add the writes of ``later`` (gathered after this one) after this one's, for a
        failed batch tried again: a reservation ``later`` released is dropped by its release,
        which ``run`` writes after every reservation."""
        self.reserves.update(later.reserves)
        self.releases.extend(later.releases)
        for key, (processed, failures) in later.counts.items():
            pair = self.counts.setdefault(key, [0, 0])
            pair[0] += processed
            pair[1] += failures

    def run(self, b: Batch) -> None:
        """Write the gathered reservations, releases and counts (on the writer thread)."""
        if self.reserves:
            # Only for a job still stored: a reservation tried again after a failed commit
            # may come after the FAIL that moved its job on.
            b.conn.executemany(
                "INSERT OR REPLACE INTO working (jid, job_id, wid, reserved_at, expires_at)"
                " SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ?)",
                [(*row, row[1]) for row in self.reserves.values()],
            )
        if self.releases:
            b.conn.executemany("DELETE FROM working WHERE jid = ? AND job_id = ?", self.releases)
            b.conn.executemany("DELETE FROM jobs WHERE id = ?", [(i,) for _, i in self.releases])
        for key, (processed, failures) in self.counts.items():
            b.count((key,), processed, failures)


class Op(Generic[T]):
    """One submitted operation and what to do on the loop once its batch settled."""

    __slots__ = ("fn", "future", "done", "undo", "rows")

    def __init__(
        self,
        fn: Callable[[Batch], T],
        future: asyncio.Future[T] | None,
        done: Callable[[T], None] | None,
        undo: Callable[[], None] | None,
        rows: int = 1,
    ) -> None:
        self.fn = fn
        self.future = future
        self.done = done
        self.undo = undo
        self.rows = rows


Outcome = tuple[bool, Any]


def settle(ops: list[Op[Any]], outcomes: list[Outcome]) -> None:
    """Run on the loop: apply ``done``/``undo`` and resolve every operation's future."""
    for op, (ok, value) in zip(ops, outcomes, strict=True):
        if ok:
            _guarded(op.done, value)
            if op.future is not None and not op.future.done():
                op.future.set_result(value)
            continue
        error = as_storage_error(value)
        _guarded(op.undo)
        # A background write (no future) reports through its undo, Writer._hold_back.
        if op.future is not None and not op.future.done():
            op.future.set_exception(error)


def as_storage_error(exc: BaseException) -> BaseException:
    """An ``sqlite3`` error as the :class:`~werk.errors.StorageError` callers get (its cause
    kept); any other exception as it is."""
    if isinstance(exc, sqlite3.Error):
        error = StorageError(f"SQLite write failed: {exc}")
        error.__cause__ = exc
        return error
    return exc


def _guarded(fn: Callable[..., None] | None, *args: Any) -> None:
    if fn is None:
        return
    try:
        fn(*args)
    except Exception:  # a bug in a callback must not lose the other results
        log.exception("SQLite store callback failed")
