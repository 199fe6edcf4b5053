"""Group commit: one thread owns the write connection and commits many operations at once.

Callers on the event loop submit operations (a function of a :class:`Batch`); the writer
takes every pending one, runs them in ONE transaction, commits (one fsync), then settles
them all on the loop with a single ``call_soon_threadsafe``. In ``os`` mode, while the thread
is idle and recent commits are fast, the loop commits a small batch itself at the end of its
iteration (no thread hop each way; :data:`INLINE`), or a lone write at once, inside
:meth:`Writer.call` (no pass of the loop either); WAL checkpoints run on the thread with a
connection of their own, never inside a commit.

An operation's ``done`` callback updates the store's in-memory state on the loop before its
awaiting caller resumes; ``undo`` puts claimed state back when the write failed (the store
shows a pushed job to a waiting FETCH before its write, with ids from :meth:`Writer.take_ids`,
and takes it back that way). A failed write fails only the operations of its batch (with
:class:`~werk.errors.StorageError`); the thread lives on and later batches are tried afresh.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, Final, NamedTuple, TypeVar

from werk.errors import StorageError
from werk.storage.sqlite.batch import (
    Background,
    Batch,
    JobIds,
    Op,
    Outcome,
    as_storage_error,
    settle,
)

T = TypeVar("T")
log = logging.getLogger("werk.storage.sqlite.store")

MAX_BATCH: Final = 4096
"""Most operations in one transaction, so one huge burst cannot starve its callers."""

GATHER: Final = 0.002
"""How long the loop gathers FETCH/ACK writes before handing them to the writer."""

LINGER: Final = 0.005
"""How long background writes (which nobody awaits) wait to be batched with later ones."""

RETRY_HELD: Final = 1.0
"""Seconds between attempts to commit background writes whose commit failed (a full disk):
they are kept, ahead of those gathered since, until a commit takes them."""


class InlinePolicy(NamedTuple):
    """When the loop may commit a gathered batch itself instead of handing it over."""

    max_rows: int
    """Most rows in the batch; bigger batches go to the thread."""
    max_seconds: float
    """Only while the moving average of recent commits (on the loop or the thread) stays
    below this: a slow or stalling disk sends every commit to the thread, and the loop
    goes back to committing once the thread's commits are fast again."""


INLINE: Final = {
    # A write into the page cache (~15 us): small batches are cheaper on the loop.
    "os": InlinePolicy(max_rows=64, max_seconds=0.005),
}
"""The inline policy of each durability mode that has one. ``fsync`` has none: every
fsynced commit runs on the thread (committing one producer's PUSH on the loop did not win
reliably in same-run A/B tests on a shared disk, and the fsync stays off the loop)."""

COMMIT_DELAY: Final = 1.0
"""Group commit across round trips (PostgreSQL's ``commit_delay`` for siblings): the
producers that the last commit answered send their next writes about one round trip
later. While fewer awaited writes are here than that commit answered, the thread waits
for the others until this share of a commit's moving-average time has passed since that
commit (so a write arriving later, or a lone producer's, which answered one, never waits;
and no wait is longer than the commit itself takes). 16 producers in ``fsync`` mode, A/B
against 0.5: 9.4 -> 12.8 PUSHes per commit (docs/benchmarks.md)."""

MAX_COMMIT_DELAY: Final = 0.001
"""The longest such wait, in seconds, however slow the disk."""

AVERAGE_WEIGHT: Final = 0.2
"""Weight of the newest commit in the moving average of commit durations."""

CHECKPOINT_EVERY: Final = 0.2
"""Seconds between WAL checkpoints while there are new commits."""

CHECKPOINT: Final = "checkpoint"
"""The item that asks the writer thread for a passive WAL checkpoint."""


class Writer:
    """The writer thread and its queue of pending operations.

    Attributes:
        commits: how many transactions were committed (group commit makes this far
            smaller than the number of operations).
        commit_seconds: the time those transactions took in total, fsync included
            (with ``commits``, the mean commit latency; ``/metrics`` exports both).
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        loop: asyncio.AbstractEventLoop,
        first_id: int,
        checkpoints: sqlite3.Connection | None = None,
        inline: InlinePolicy | None = None,
    ):
        """With ``inline`` (and then ``checkpoints``, a connection for WAL checkpoints, and
        ``conn`` with ``wal_autocheckpoint`` off), the loop commits the batches that policy
        allows itself while the thread is idle; without, every commit runs on the thread."""
        self.commits = 0
        self.commit_seconds = 0.0
        self._conn = conn
        self._loop = loop
        self._ids = JobIds(first_id)
        self._queue: queue.SimpleQueue[list[Op[Any]] | str | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="werk-sqlite-writer", daemon=True)
        self._closed = False
        self._background = Background()
        self._flush_timer: asyncio.TimerHandle | None = None
        self._held_failures = 0  # failed commits of the background writes held now
        self._last_error: BaseException | None = None
        self._checkpoints = checkpoints
        self._policy = inline
        self._queued = 0  # ops handed to the thread and not yet settled (loop side)
        self._handing: list[Op[Any]] = []  # for the thread, put at the end of this iteration
        self._inline: list[Op[Any]] = []
        self._inline_rows = 0
        self._committed_now = False  # a write committed at once in this pass of the loop
        self._crowded = False  # the last gathered batch showed writes arriving together
        self._average = 0.0  # moving average of commit durations, seconds
        self._answered = 0  # awaited ops in the thread's last batch (thread side)
        self._committed_at = 0.0  # when the thread's last batch was settled
        self._dirty = False  # committed since the last checkpoint request
        self._checkpoint_at = 0.0

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def reserve(self, jid: str, job_id: int, wid: str, at: float, until: float) -> None:
        """Record a reservation in the background (nobody waits for it)."""
        self._background.reserves[jid] = (jid, job_id, wid, at, until)
        self._schedule_background()

    def release(self, jid: str, job_id: int, keys: tuple[str, ...], processed: int) -> None:
        """Drop a reservation and its job row in the background, counting it processed."""
        pending = self._background.reserves.get(jid)
        if pending is not None and pending[1] == job_id:
            del self._background.reserves[jid]
        self._background.releases.append((jid, job_id))
        for key in keys:
            pair = self._background.counts.setdefault(key, [0, 0])
            pair[0] += processed
        self._schedule_background()

    def _schedule_background(self) -> None:
        if self._held_failures:
            delay = RETRY_HELD  # a failing disk is tried again once a second, not per ACK
        elif len(self._background) >= MAX_BATCH:
            self.flush_background()
            return
        else:
            delay = GATHER
        if self._flush_timer is None:
            self._flush_timer = self._loop.call_later(delay, self.flush_background)

    def flush_background(self) -> None:
        """Hand the gathered background writes to the writer thread as one operation."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self._closed:
            return  # stop() handed over the last ones; it reports what it could not keep
        if len(self._background):
            background, self._background = self._background, Background()
            hold_back = functools.partial(self._hold_back, background)
            op = Op(background.run, None, self._background_committed, hold_back, len(background))
            # Not awaited: it may as well be batched on the thread, unless an inline batch
            # is already gathering (writes commit in call order).
            if self._inline:
                self._gather_inline(op)  # its rows count: a big one sends all to the thread
            else:
                self._put(op)

    def _hold_back(self, failed: Background) -> None:
        """Keep background writes whose commit failed, ahead of those gathered since, and
        try them again later: an ACK already answered ``+OK`` is not lost to a full disk
        (Werk's rule; the jobs of writes still held when the server stops run again)."""
        if not self._held_failures:
            log.error(
                "FETCH/ACK writes could not be committed (%s); kept in memory and tried again"
                " every %g s",
                self._last_error,
                RETRY_HELD,
            )
        self._held_failures += 1
        failed.absorb(self._background)
        self._background = failed
        if not self._closed:
            self._schedule_background()

    def _background_committed(self, _: object) -> None:
        if self._held_failures:
            log.warning(
                "FETCH/ACK writes committed again after %d failed attempts", self._held_failures
            )
            self._held_failures = 0

    def call(
        self,
        fn: Callable[[Batch], T],
        done: Callable[[T], None] | None = None,
        undo: Callable[[], None] | None = None,
        rows: int = 1,
    ) -> asyncio.Future[T]:
        """Queue a write and return a future resolved once it committed (or failed).

        ``rows`` is about how many rows it writes (big batches always go to the thread).
        Background writes gathered so far are queued first, so they commit before it,
        except while some failed to commit (:meth:`_hold_back`): those are tried on their
        own every ``RETRY_HELD`` seconds, so that a backlog the disk cannot take does not
        fail every later write with it."""
        if not self._held_failures:
            self.flush_background()
        future: asyncio.Future[T] = self._loop.create_future()
        op = Op(fn, future, done, undo, rows)
        if self._inline or (self._policy is not None and not self._queued):
            if self._inline or not self._alone(rows):
                self._gather_inline(op)
            else:
                self._commit_now(op)
        else:
            self._put(op)
        return future

    def _alone(self, rows: int) -> bool:
        """Whether a write the loop may commit itself can commit at once: the first of
        this pass while writes have been arriving one at a time (a lone producer). A second
        write in the same pass is gathered (several connections are writing), and so are
        the writes after it until a gathered batch holds a single write again."""
        policy = self._policy
        assert policy is not None
        return (
            not self._committed_now
            and not self._crowded
            and rows <= policy.max_rows
            and self._average <= policy.max_seconds
        )

    def _commit_now(self, op: Op[Any]) -> None:
        """Commit a lone write on the loop inside :meth:`call`; its future is resolved when
        ``call`` returns, so its caller goes on without waiting for another pass of the loop
        (in ``os`` mode 5 to 17% of a lone PUSH's instructions, docs/benchmarks.md)."""
        if self._closed:
            raise StorageError("the SQLite store is closed")
        self._committed_now = True
        self._loop.call_soon(self._end_pass)
        self._settled([op], self._execute([op]), queued=False)

    def _end_pass(self) -> None:
        self._committed_now = False

    def take_ids(self, n: int) -> range:
        """Reserve ``n`` new ``jobs`` row ids on the loop, for rows a later :meth:`call`
        writes (the store shows such jobs before their write)."""
        return self._ids.take(n)

    def _put(self, op: Op[Any]) -> None:
        if self._closed:
            raise StorageError("the SQLite store is closed")
        self._queued += 1
        if not self._handing:
            # One put (one wake-up of the thread) for every write of this loop iteration:
            # the PUSHes of many connections read together commit together.
            self._loop.call_soon(self._hand_over)
        self._handing.append(op)

    def _hand_over(self) -> None:
        if self._handing:
            ops, self._handing = self._handing, []
            self._queue.put(ops)

    def _gather_inline(self, op: Op[Any]) -> None:
        if self._closed:
            raise StorageError("the SQLite store is closed")
        if not self._inline:
            # At the end of this loop iteration: the writes of every command handled in it
            # commit together.
            self._loop.call_soon(self._commit_inline)
        self._inline.append(op)
        self._inline_rows += op.rows

    def _commit_inline(self) -> None:
        """Commit the gathered batch on the loop, or hand it to the thread if it is big,
        recent commits were slow, or the thread is busy (order is kept either way)."""
        ops, rows, self._inline, self._inline_rows = self._inline, self._inline_rows, [], 0
        if not ops:
            return
        # Writes that met in one pass: keep gathering until a batch holds a single one.
        self._crowded = len(ops) > 1 or not self._crowded
        policy = self._policy
        assert policy is not None
        if rows > policy.max_rows or self._queued or self._average > policy.max_seconds:
            for op in ops:
                self._put(op)
            return
        self._settled(ops, self._execute(ops), queued=False)

    def _settled(self, ops: list[Op[Any]], outcomes: list[Outcome], queued: bool = True) -> None:
        if queued:
            self._queued -= len(ops)
        for op, (ok, value) in zip(ops, outcomes, strict=True):
            if not ok and op.future is None:
                self._last_error = as_storage_error(value)
        settle(ops, outcomes)
        if self._checkpoints is not None and not self._dirty:
            self._dirty = True
            delay = max(0.0, self._checkpoint_at - time.monotonic())
            self._loop.call_later(delay, self._request_checkpoint)

    def _request_checkpoint(self) -> None:
        """At most every ``CHECKPOINT_EVERY`` seconds while there are new commits."""
        if self._dirty and not self._closed:
            self._dirty = False
            self._checkpoint_at = time.monotonic() + CHECKPOINT_EVERY
            self._queue.put(CHECKPOINT)

    async def stop(self) -> None:
        """Commit everything queued so far, then end the thread and close the connection."""
        if self._closed:
            return
        self.flush_background()
        self._commit_inline()
        self._hand_over()
        self._closed = True
        if self._dirty:
            self._queue.put(CHECKPOINT)
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)
        await asyncio.sleep(0)  # the last batch's outcome, posted before the thread ended
        if len(self._background):
            log.error(
                "%d FETCH/ACK writes could not be committed before the stop (%s): their jobs"
                " are handed out again after a restart",
                len(self._background),
                self._last_error,
            )

    # -- writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if isinstance(first, str):
                self._checkpoint()
                continue
            ops, stopping = ([], True) if first is None else self._gather(first)
            if ops:
                self._settle_later(ops, self._execute(ops))
                self._committed_at = time.monotonic()
        self._conn.close()
        if self._checkpoints is not None:
            self._checkpoints.close()

    def _checkpoint(self) -> None:
        """Copy committed WAL frames into the database (fsyncs both), next to the commits."""
        assert self._checkpoints is not None
        try:
            self._checkpoints.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # the next one retries; the WAL just grows meanwhile
            log.warning("WAL checkpoint failed: %s", exc)

    def _gather(self, first: list[Op[Any]]) -> tuple[list[Op[Any]], bool]:
        """Take every pending op. While only background ops (FETCH/ACK) are waiting, linger
        up to ``LINGER`` seconds for more: fewer commits and fsyncs, and fewer page-cache
        resets in the loop's read connection, at no cost to any awaiting caller. While
        fewer awaited ops are here than the last commit answered, wait for them a little
        (:data:`COMMIT_DELAY`)."""
        ops = list(first)
        awaited = _awaited(first)
        linger_until = 0.0
        delay = min(COMMIT_DELAY * self._average, MAX_COMMIT_DELAY)
        while len(ops) < MAX_BATCH:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                now = time.monotonic()
                if awaited:
                    if awaited >= self._answered:
                        break
                    deadline = self._committed_at + delay
                else:
                    linger_until = deadline = linger_until or now + LINGER
                if deadline <= now:
                    break
                try:
                    item = self._queue.get(timeout=deadline - now)
                except queue.Empty:
                    break
            if item is None:
                return ops, True
            if isinstance(item, str):
                self._queue.put(item)  # the checkpoint waits for this batch's commit
                break
            ops.extend(item)
            awaited += _awaited(item)
        self._answered = awaited
        return ops, False

    def _execute(self, ops: list[Op[Any]]) -> list[Outcome]:
        try:
            return self._transaction(ops)
        except Exception:
            # Replay alone so that only the operations at fault fail: one that raised, or
            # one too big for the room left when the COMMIT failed (a full disk).
            return [self._transaction([op])[0] for op in ops]

    def _transaction(self, ops: list[Op[Any]]) -> list[Outcome]:
        """Run ``ops`` in one transaction; a lone op's own error becomes its outcome."""
        conn = self._conn
        batch = Batch(conn, self._ids)
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        try:
            results: list[Outcome] = []
            for op in ops:
                results.append((True, op.fn(batch)))
            batch.write_counts()
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if len(ops) == 1 and isinstance(exc, Exception):
                return [(False, exc)]
            raise
        self.commits += 1
        took = time.perf_counter() - started
        self.commit_seconds += took
        self._average += (took - self._average) * AVERAGE_WEIGHT
        return results

    def _settle_later(self, ops: list[Op[Any]], outcomes: list[Outcome]) -> None:
        try:
            self._loop.call_soon_threadsafe(self._settled, ops, outcomes)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            log.warning("event loop closed; %d settled writes not reported", len(ops))


def _awaited(ops: list[Op[Any]]) -> int:
    return sum(op.future is not None for op in ops)
