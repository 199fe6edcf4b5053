"""The storage contract: what every backend (SQLite, Redis) must do, and nothing more.

The manager holds the rules (validation, retry decisions, backoff); a store keeps jobs
and performs each step atomically, so that several servers sharing one backend never hand
out the same job or lose one. Every method is a coroutine; nothing backend-specific (SQL,
a Redis client) leaks out of a store.

The data model (docs/internals/storage.md says more):

- a *queue* holds :class:`Entry` values in fetch order: higher ``priority`` first, FIFO
  within a priority. Each queued entry carries the time it entered the queue.
- four time-ordered sets: ``scheduled`` (score = due time), ``retries`` (score = next
  retry), ``dead`` (score = expiry) and the working set of :class:`Reservation` values
  (score = reservation expiry). A job appears at most once in a set, keyed by jid.
- paused queue names, the known queue names, counters (``processed``, ``failures``, and the
  same per UTC day) and worker process records.

Durability: a call that puts a new job into the store (:meth:`Store.enqueue`,
:meth:`Store.add`) returns only once the job is durable. :meth:`Store.fetch` and
:meth:`Store.ack` may return before their write is durable: after a crash the job is
still queued or reserved, and is delivered again. Every other write is durable on return.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

SetName = Literal["scheduled", "retries", "dead"]
SET_NAMES: tuple[SetName, ...] = ("scheduled", "retries", "dead")


@dataclass(frozen=True, slots=True)
class Entry:
    """One job as the store keeps it.

    ``body`` is the job's compact JSON object *without* ``enqueued_at``: the store keeps
    that time beside the body (see :class:`Queued`) and the manager splices it in when the
    job is handed out. ``reserve_for`` is already clamped to [60, 86400] seconds.
    """

    jid: str
    queue: str
    jobtype: str
    priority: int
    reserve_for: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Queued:
    """An entry waiting in a queue, with the time it was enqueued (Unix seconds)."""

    entry: Entry
    enqueued_at: float


@dataclass(frozen=True, slots=True)
class Reservation:
    """A fetched job, held by a worker until ACK, FAIL or ``expires_at``."""

    entry: Entry
    enqueued_at: float
    reserved_at: float
    expires_at: float
    wid: str


@dataclass(frozen=True, slots=True)
class Scored:
    """An entry of a time-ordered set with its score (Unix seconds)."""

    score: float
    entry: Entry


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a failed job goes: a set and its score there, with its updated entry."""

    set: SetName
    score: float
    entry: Entry


@dataclass(frozen=True, slots=True)
class SetFilter:
    """Narrows a set listing: exact queue, exact jobtype, and a substring of the body."""

    queue: str | None = None
    jobtype: str | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Counters:
    """The lifetime counters: FAILs and ACKs count as processed; FAILs as failures."""

    processed: int
    failures: int


@dataclass(frozen=True, slots=True)
class DayCount:
    """Processed and failed counts of one UTC day, ``day`` as ``YYYY-MM-DD``."""

    day: str
    processed: int
    failures: int


@dataclass(slots=True)
class Process:
    """A worker process, known by its ``wid``, with what its HELLO and BEATs said.

    ``state`` is ``""`` (running), ``"quiet"`` or ``"terminate"``; it only moves forward.
    ``last_beat`` is Unix seconds. ``server`` names the Werk server it first said HELLO to.
    ``links`` maps each server holding connections of it (``"<name>:<port>"``) to
    ``[open connections there, Unix seconds that server last wrote the count]``;
    ``connections`` is their sum (see :mod:`werk.manager.processes`).
    """

    wid: str
    hostname: str = ""
    pid: int = 0
    labels: list[str] = field(default_factory=list)
    started_at: float = 0.0
    last_beat: float = 0.0
    rss_kb: int = 0
    state: str = ""
    connections: int = 0
    server: str = ""
    links: dict[str, list[float]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LimitResult:
    """The answer of a limiter: ``acquired``, or how long to wait before trying again.

    ``retry_after`` is in seconds (0 when acquired); ``held`` is how many holders (or,
    for rate limiters, uses in the current interval or window) count against the limit.
    """

    acquired: bool
    retry_after: float
    held: int


LimitKind = Literal["concurrent", "bucket", "window", "leaky"]
"""``concurrent``: at most ``limit`` holders at once, each held until released or until
``ttl`` passes. ``bucket``: at most ``limit`` acquisitions per fixed interval of ``period``
seconds (aligned to multiples of ``period``). ``window``: at most ``limit`` acquisitions in
any sliding window of ``period`` seconds. ``leaky``: a bucket of capacity ``limit`` that
drains at ``limit / period`` per second; each acquisition adds one."""


WaitingPredicate = Callable[[Iterable[str]], bool]
"""Whether a FETCH waits on one of the named queues (:meth:`Store.on_available`)."""
AvailableCallback = Callable[[Iterable[str]], None]
"""Called with queue names when jobs may have become fetchable there."""


class Store(Protocol):
    """The contract every storage backend fulfils. See the module docstring."""

    async def open(self) -> None:
        """Connect or open files, check integrity, load what the backend keeps in memory.

        Raises:
            StoreCorruptError: the data is damaged; the store refuses to start.
            StorageError: the backend cannot be reached.
        """
        ...

    async def close(self) -> None:
        """Make every accepted write durable and release the backend."""
        ...

    def on_available(
        self, callback: AvailableCallback, waiting: WaitingPredicate | None = None
    ) -> None:
        """Register ``callback``, called on the event loop whenever jobs may have become
        fetchable in some queues: after :meth:`enqueue`, :meth:`move_due`,
        :meth:`requeue` or :meth:`resume`, by this process or (on a shared backend)
        another server. ``waiting`` tells whether a FETCH is parked on one of the named
        queues right now; a backend may use it to hand a pushed job over sooner (the
        SQLite store shows it to the waiting FETCH before writing it) and ignore it otherwise."""
        ...

    # -- queues ------------------------------------------------------------------

    async def enqueue(self, entries: Sequence[Entry], now: float) -> None:
        """Append entries to their queues with ``enqueued_at = now``; durable on return.

        Queue names are remembered as known queues."""
        ...

    async def fetch(self, queues: Sequence[str], now: float, wid: str) -> Reservation | None:
        """Atomically take the next job from the first non-empty, unpaused queue in
        ``queues`` (highest priority first, FIFO within a priority) and reserve it until
        ``now + entry.reserve_for``. Return ``None`` at once when all are empty."""
        ...

    async def queue_sizes(self) -> dict[str, int]:
        """Return the size of every known queue (empty ones included)."""
        ...

    async def queue_page(self, queue: str, offset: int, limit: int) -> list[Queued]:
        """Return up to ``limit`` entries of a queue in fetch order, after ``offset``."""
        ...

    async def queue_delete(self, queue: str, jids: Sequence[str]) -> list[str]:
        """Delete the listed jobs from a queue; return the jids of those deleted, in the
        listed order (a job fetched meanwhile, or never there, is not listed)."""
        ...

    async def oldest_enqueued(self, queues: Sequence[str]) -> dict[str, float | None]:
        """Return, per queue, the ``enqueued_at`` of its oldest entry (``None`` if empty)."""
        ...

    async def pause(self, queues: Sequence[str] | None) -> None:
        """Pause the named known queues, or every known queue for ``None``."""
        ...

    async def resume(self, queues: Sequence[str] | None) -> None:
        """Resume the named queues, or every queue for ``None``."""
        ...

    async def paused(self) -> set[str]:
        """Return the names of the paused queues."""
        ...

    async def remove_queues(self, queues: Sequence[str] | None) -> None:
        """Delete queues with all their jobs and forget them (``None``: every queue)."""
        ...

    # -- reservations --------------------------------------------------------------

    async def reservation(self, jid: str) -> Reservation | None:
        """Return the reservation held for ``jid``, if any."""
        ...

    async def ack(self, jid: str, now: float) -> Reservation | None:
        """Release the reservation of ``jid`` and count one processed job (lifetime and
        ``now``'s UTC day). Return the released reservation, or ``None`` (nothing done)."""
        ...

    async def fail(self, jid: str, now: float, placement: Placement | None) -> bool:
        """Atomically release the reservation of ``jid``, count one processed and one
        failed job, and put the job where ``placement`` says (``None``: discard it).
        Return ``False``, doing nothing, when ``jid`` holds no reservation."""
        ...

    async def extend(self, jid: str, expires_at: float) -> bool:
        """Move a reservation's expiry to ``expires_at`` if that is later; ``False`` if
        ``jid`` holds no reservation."""
        ...

    async def expire(self, jid: str, now: float, placement: Placement | None) -> bool:
        """Like :meth:`fail` (same counting) for a reservation that timed out, but only if
        its expiry is still at or before ``now``: a concurrent :meth:`extend` wins."""
        ...

    async def expired(self, now: float, limit: int) -> list[Reservation]:
        """Return up to ``limit`` reservations whose expiry is at or before ``now``."""
        ...

    async def working(self, offset: int, limit: int) -> list[Reservation]:
        """Return reservations ordered by expiry, after ``offset``."""
        ...

    async def working_size(self) -> int:
        """Return the number of reservations."""
        ...

    # -- time-ordered sets -----------------------------------------------------------

    async def add(self, name: SetName, items: Sequence[Scored]) -> None:
        """Add (or replace, by jid) entries in a set; durable on return."""
        ...

    async def move_due(self, name: SetName, now: float, limit: int) -> int:
        """Atomically move up to ``limit`` entries with ``score <= now`` from a set into
        their queues with ``enqueued_at = now``; return how many moved."""
        ...

    async def next_due(self, name: SetName) -> float | None:
        """Return the lowest score in a set, or ``None`` when it is empty."""
        ...

    async def set_size(self, name: SetName) -> int:
        """Return the number of entries in a set."""
        ...

    async def set_page(
        self,
        name: SetName,
        offset: int,
        limit: int,
        *,
        reverse: bool = False,
        where: SetFilter | None = None,
    ) -> list[Scored]:
        """Return up to ``limit`` entries ordered by score (descending if ``reverse``),
        after ``offset``, matching ``where``. Paging is done by the backend."""
        ...

    async def set_count(self, name: SetName, where: SetFilter) -> int:
        """Return how many entries of a set match ``where``."""
        ...

    async def set_get(self, name: SetName, jid: str) -> Scored | None:
        """Return the entry of ``jid`` in a set, if present."""
        ...

    async def set_match(self, name: SetName, pattern: str | None) -> list[Scored]:
        """Return every entry whose body matches a glob (``*``, ``?``, ``[...]``, as
        Redis MATCH), or every entry for ``None``. This scans the set: O(n)."""
        ...

    async def set_remove(self, name: SetName, jids: Sequence[str]) -> list[str]:
        """Remove the listed entries in one transaction; return the jids of those removed,
        in the listed order (one moved meanwhile, or never there, is not listed). Callers
        empty a large set a chunk at a time, so that other writers wait at most one chunk
        (see :mod:`werk.manager.deletion`)."""
        ...

    async def set_move(
        self, name: SetName, jids: Sequence[str], to: SetName, score: float
    ) -> list[str]:
        """Atomically move the listed entries to another set with a new score; return the
        jids of those moved, in the listed order, as :meth:`set_remove`."""
        ...

    async def requeue(self, name: SetName, jids: Sequence[str] | None, now: float) -> int:
        """Atomically move the listed entries (``None``: all) from a set to their queues
        with ``enqueued_at = now``; return how many moved. The manager requeues a large set
        a chunk of listed jids at a time (see :mod:`werk.manager.deletion`)."""
        ...

    async def remove_before(self, name: SetName, now: float, limit: int) -> int:
        """Delete up to ``limit`` entries with ``score <= now`` (the dead set's purge)."""
        ...

    # -- counters ------------------------------------------------------------------

    async def counters(self) -> Counters:
        """Return the lifetime processed and failure counters."""
        ...

    async def history(self, days: Sequence[str]) -> list[DayCount]:
        """Return the counts of the listed UTC days (``YYYY-MM-DD``), zero where none."""
        ...

    # -- worker processes -------------------------------------------------------------

    async def put_process(self, process: Process) -> None:
        """Create or replace the record of a worker process."""
        ...

    async def get_process(self, wid: str) -> Process | None:
        """Return the record of a worker process, if known."""
        ...

    async def processes(self) -> list[Process]:
        """Return every known worker process."""
        ...

    async def delete_process(self, wid: str) -> None:
        """Forget a worker process."""
        ...

    # -- coordination: locks, records, counters, limiters ------------------------------
    # The building blocks of unique jobs, cron, batches, tracking, throttles and rate
    # limiters. Keys are free-form strings chosen by the manager (e.g. "unique:<digest>");
    # each method is atomic across every server sharing the backend.

    async def claim(self, key: str, owner: str, ttl: float, now: float) -> bool:
        """Take the lock ``key`` for ``owner`` until ``now + ttl``.

        Succeeds when the lock is free, expired, or already held by ``owner`` (then its
        expiry is moved to ``now + ttl``); fails, changing nothing, when another owner
        holds it unexpired."""
        ...

    async def release(self, key: str, owner: str | None) -> bool:
        """Drop the lock ``key`` if ``owner`` holds it (``None``: whoever holds it).
        Return whether a lock was dropped."""
        ...

    async def put_record(self, key: str, value: bytes, ttl: float | None, now: float) -> None:
        """Store ``value`` under ``key``, replacing any; it vanishes at ``now + ttl``
        (never for ``None``). Durable on return."""
        ...

    async def get_record(self, key: str, now: float) -> bytes | None:
        """Return the value under ``key``, or ``None`` if absent or expired."""
        ...

    async def delete_record(self, key: str) -> None:
        """Delete the record ``key`` (and its counters, see :meth:`add_counts`)."""
        ...

    async def records(self, prefix: str, now: float) -> list[tuple[str, bytes]]:
        """Return every unexpired ``(key, value)`` whose key starts with ``prefix``,
        ordered by key."""
        ...

    async def add_counts(self, key: str, deltas: dict[str, int]) -> dict[str, int]:
        """Atomically add ``deltas`` to the named counters of ``key`` (missing counters
        start at 0) and return every counter of ``key`` after the change. An empty
        ``deltas`` just reads them. Counters live until :meth:`delete_record` of ``key``."""
        ...

    async def limit_acquire(
        self,
        name: str,
        kind: LimitKind,
        limit: int,
        period: float,
        holder: str,
        now: float,
    ) -> LimitResult:
        """Try to take one unit of the limiter ``name`` for ``holder``.

        For ``concurrent``, ``period`` is the hold timeout (a holder not released by
        then is reclaimed) and acquiring again for a holder that already holds succeeds
        without taking a second unit. ``retry_after`` estimates when a unit frees up (for
        ``concurrent``: the earliest expiry of a current holder)."""
        ...

    async def limit_release(self, name: str, holder: str) -> bool:
        """Give back ``holder``'s unit of a ``concurrent`` limiter; other kinds ignore it.
        Return whether a unit was released."""
        ...

    async def limit_status(self, name: str, now: float) -> int:
        """Return how many units of limiter ``name`` count against it at ``now``."""
        ...

    # -- everything -----------------------------------------------------------------

    async def flush(self) -> None:
        """Delete every job, set, queue, pause and counter, and every lock, record and
        limiter. Worker processes stay."""
        ...


IntakePush = Callable[[bytes], Awaitable[None]]
"""PUSHes one job given as JSON text; raises :class:`~werk.errors.CommandError` to refuse."""


@runtime_checkable
class TransactionalIntake(Protocol):
    """A store that also takes jobs applications pushed inside their own database
    transactions (PostgreSQL's ``<schema>.push(json)``, Werk's extension): the server
    PUSHes each through the manager, exactly once, in the transaction that removes it."""

    def on_intake(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the loop whenever transactional pushes may be waiting."""
        ...

    async def take_intake(self, push: IntakePush, limit: int = 100) -> int:
        """PUSH up to ``limit`` waiting jobs with ``push`` in one transaction; a job that
        ``push`` refuses stays recorded with its error. Return how many were taken."""
        ...
