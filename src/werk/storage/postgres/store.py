"""The PostgreSQL storage backend: several Werk servers share one database.

Each operation is one statement (a data-modifying CTE, or the ``fetch`` function) or one
short transaction, so every rule holds across servers: FETCH claims a row with
``FOR UPDATE SKIP LOCKED`` and moves it to ``working`` in the same statement; every move
deletes from one table and inserts into another in one statement. Blocking FETCH wakes
across servers through ``LISTEN <schema>_available`` (:mod:`.listener`). The tables and
functions are in :mod:`werk.storage.postgres.schema`; docs/storage-postgres.md tells the
statements each operation costs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from werk.storage.base import (
    AvailableCallback,
    Counters,
    DayCount,
    Entry,
    Process,
    Queued,
    Reservation,
    Store,
    WaitingPredicate,
)
from werk.storage.postgres.coord import PgCoord
from werk.storage.postgres.core import (
    RESERVATION_COLUMNS,
    WATCH,
    entry_of,
    listed,
    reservation_of,
    wrap_errors,
)
from werk.storage.postgres.intake import PgIntake
from werk.storage.postgres.listener import Listener
from werk.storage.postgres.schema import DEFAULT_SCHEMA, check_schema_name, migrate
from werk.storage.postgres.sets import PgSets
from werk.storage.postgres.url import parse_url

ENQUEUE = """
WITH t AS (
  SELECT * FROM unnest(%s::text[], %s::smallint[], %s::text[], %s::text[], %s::integer[],
                       %s::bytea[]) WITH ORDINALITY AS t(queue, priority, jid, jobtype,
                                                         reserve_for, body, n)
), known AS (
  INSERT INTO {s}.queues (name) SELECT DISTINCT queue FROM t ON CONFLICT DO NOTHING
), added AS (
  INSERT INTO {s}.jobs (queue, priority, jid, jobtype, reserve_for, enqueued_at, body)
  SELECT queue, priority, jid, jobtype, reserve_for, %s, body FROM t ORDER BY n
)
SELECT pg_notify(%s, %s)
"""

FLUSHED = (
    "jobs working sets queues counters intake locks records counts limiters limit_units".split()
)

FETCH = "SELECT * FROM {s}.fetch(%s::text[], %s, %s)"

OLDEST = """
SELECT min(e) FROM generate_series(0, 9) p, LATERAL (
  SELECT enqueued_at e FROM {s}.jobs WHERE queue = %s AND priority = p ORDER BY id LIMIT 1
) x
"""


class PostgresStore(PgCoord, PgSets, PgIntake):
    """A :class:`~werk.storage.base.Store` kept in PostgreSQL, shareable by many servers.

    Args:
        conninfo: a libpq URL or key/value string (``postgresql://user@host/db``).
        schema: the schema holding Werk's tables (created on open).
        pool_size: the most connections this store opens (plus one for LISTEN).
    """

    def __init__(self, conninfo: str, *, schema: str = DEFAULT_SCHEMA, pool_size: int = 10):
        super().__init__(check_schema_name(schema), uuid.uuid4().hex)
        self.conninfo = conninfo
        self.pool_size = pool_size
        self._listener: Listener | None = None

    @classmethod
    def from_url(cls, url: str) -> PostgresStore:
        """Build an unopened store from a URL that may carry ``?schema=`` and ``?pool=``
        besides libpq's parameters.

        Raises:
            StorageURLError: an option is unknown or its value bad (naming it).
        """
        parsed = parse_url(url)
        return cls(parsed.conninfo, schema=parsed.schema, pool_size=parsed.pool)

    @wrap_errors
    async def open(self) -> None:
        """Connect, apply pending migrations, and start listening for other servers."""
        self._pool = AsyncConnectionPool(
            self.conninfo,
            min_size=1,
            max_size=self.pool_size,
            kwargs={"autocommit": True},
            open=False,
            timeout=20,
            name=f"werk-{self.schema}",
        )
        # A plain connection first: an unreachable server fails at once, not after the
        # pool's patience; the schema is ready before any pooled connection is used.
        async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
            await migrate(conn, self.schema)
        await self._pool.open(wait=True, timeout=10)
        listener = Listener(self.conninfo, self.schema, self.origin, self._notify, self._known)
        listener.on_intake(self._intake_signal)
        await listener.start()
        self._listener = listener
        WATCH.stores += 1  # open: a call that waits long is logged from now on

    async def close(self) -> None:
        """Stop listening and close the pool (PostgreSQL owns durability)."""
        if self._listener is not None:
            WATCH.stores -= 1
            await self._listener.stop()
            self._listener = None
        if hasattr(self, "_pool"):
            await self._pool.close()

    def on_available(
        self, callback: AvailableCallback, waiting: WaitingPredicate | None = None
    ) -> None:
        """Register a callback for queues that may have become fetchable (any server);
        ``waiting`` is not needed here."""
        self._callbacks.append(callback)

    async def _known(self) -> list[str]:
        return [str(row[0]) for row in await self._rows("SELECT name FROM {s}.queues")]

    # -- queues ------------------------------------------------------------------

    @wrap_errors
    async def enqueue(self, entries: Sequence[Entry], now: float) -> None:
        """Insert entries in one statement that also NOTIFYs; durable on commit."""
        if not entries:
            return
        queues = [e.queue for e in entries]
        columns: list[Any] = [
            queues,
            [e.priority for e in entries],
            [e.jid for e in entries],
            [e.jobtype for e in entries],
            [e.reserve_for for e in entries],
            [e.body for e in entries],
        ]
        async with self._conn() as conn:
            await conn.execute(
                self._sql(ENQUEUE), (*columns, now, self.channel, self.payload(queues))
            )
        self._notify(dict.fromkeys(queues))

    @wrap_errors
    async def fetch(self, queues: Sequence[str], now: float, wid: str) -> Reservation | None:
        """Take and reserve the next job of the first non-empty unpaused queue."""
        if not queues:
            return None
        row = await self._one(
            "SELECT * FROM {s}.fetch(%s::text[], %s, %s)", (list(queues), now, wid)
        )
        if row is None:
            return None
        entry = Entry(row[0], row[1], row[2], int(row[3]), int(row[4]), bytes(row[6]))
        return Reservation(entry, float(row[5]), now, float(row[7]), wid)

    @wrap_errors
    async def queue_sizes(self) -> dict[str, int]:
        """Return the size of every known queue."""
        rows = await self._rows(
            "SELECT q.name, (SELECT count(*) FROM {s}.jobs j WHERE j.queue = q.name)"
            " FROM {s}.queues q ORDER BY q.name"
        )
        return {str(name): int(size) for name, size in rows}

    @wrap_errors
    async def queue_page(self, queue: str, offset: int, limit: int) -> list[Queued]:
        """Return up to ``limit`` entries of a queue in fetch order, after ``offset``."""
        if limit <= 0:
            return []
        rows = await self._rows(
            "SELECT jid, queue, jobtype, priority, reserve_for, body, enqueued_at"
            " FROM {s}.jobs WHERE queue = %s ORDER BY priority DESC, id OFFSET %s LIMIT %s",
            (queue, offset, limit),
        )
        return [Queued(entry_of(row), float(row[6])) for row in rows]

    @wrap_errors
    async def queue_delete(self, queue: str, jids: Sequence[str]) -> list[str]:
        """Delete the listed jobs from a queue; return the jids of those deleted, in the
        listed order."""
        if not jids:
            return []
        rows = await self._rows(
            "DELETE FROM {s}.jobs WHERE queue = %s AND jid = ANY(%s::text[]) RETURNING jid",
            (queue, list(jids)),
        )
        return listed(jids, rows)

    @wrap_errors
    async def oldest_enqueued(self, queues: Sequence[str]) -> dict[str, float | None]:
        """Return per queue the ``enqueued_at`` of its oldest entry (``None`` if empty)."""
        out: dict[str, float | None] = {}
        for name in queues:
            row = await self._one(OLDEST, (name,))
            out[name] = None if row is None or row[0] is None else float(row[0])
        return out

    @wrap_errors
    async def pause(self, queues: Sequence[str] | None) -> None:
        """Pause the named known queues, or every known queue for ``None``."""
        if queues is None:
            await self._count("UPDATE {s}.queues SET paused = true")
        elif queues:
            await self._count(
                "UPDATE {s}.queues SET paused = true WHERE name = ANY(%s::text[])", (list(queues),)
            )

    @wrap_errors
    async def resume(self, queues: Sequence[str] | None) -> None:
        """Resume the named queues, or every queue for ``None``; announce them."""
        if queues is not None and not queues:
            return
        where = "" if queues is None else " WHERE name = ANY(%s::text[])"
        params = () if queues is None else (list(queues),)
        async with self._txn() as conn:
            cur = await conn.execute(
                self._sql(f"UPDATE {{s}}.queues SET paused = false{where} RETURNING name"), params
            )
            resumed = [str(row[0]) for row in await cur.fetchall()]
            await self._announce(conn, resumed)
        self._notify(resumed)

    @wrap_errors
    async def paused(self) -> set[str]:
        """Return the names of the paused queues."""
        return {str(r[0]) for r in await self._rows("SELECT name FROM {s}.queues WHERE paused")}

    @wrap_errors
    async def remove_queues(self, queues: Sequence[str] | None) -> None:
        """Delete queues with their jobs and forget them (``None``: every queue)."""
        if queues is not None and not queues:
            return
        async with self._txn() as conn:
            if queues is None:
                await conn.execute(self._sql("DELETE FROM {s}.jobs"))
                await conn.execute(self._sql("DELETE FROM {s}.queues"))
                return
            names = list(queues)
            await conn.execute(self._sql("DELETE FROM {s}.jobs WHERE queue = ANY(%s)"), (names,))
            await conn.execute(self._sql("DELETE FROM {s}.queues WHERE name = ANY(%s)"), (names,))

    # -- reservations --------------------------------------------------------------

    @wrap_errors
    async def reservation(self, jid: str) -> Reservation | None:
        """Return the reservation held for ``jid``, if any."""
        row = await self._one(
            f"SELECT {RESERVATION_COLUMNS} FROM {{s}}.working WHERE jid = %s", (jid,)
        )
        return None if row is None else reservation_of(row)

    @wrap_errors
    async def ack(self, jid: str, now: float) -> Reservation | None:
        """Release a reservation and count one processed job, in one statement."""
        return await self._release(self._release_params(jid, now, float("inf"), 0))

    @wrap_errors
    async def extend(self, jid: str, expires_at: float) -> bool:
        """Move a reservation's expiry later; ``False`` if ``jid`` holds none."""
        found = await self._count(
            "UPDATE {s}.working SET expires_at = greatest(expires_at, %s) WHERE jid = %s",
            (expires_at, jid),
        )
        return found > 0

    @wrap_errors
    async def expired(self, now: float, limit: int) -> list[Reservation]:
        """Return up to ``limit`` reservations whose expiry is at or before ``now``."""
        if limit <= 0:
            return []
        rows = await self._rows(
            f"SELECT {RESERVATION_COLUMNS} FROM {{s}}.working WHERE expires_at <= %s"
            " ORDER BY expires_at, jid LIMIT %s",
            (now, limit),
        )
        return [reservation_of(row) for row in rows]

    @wrap_errors
    async def working(self, offset: int, limit: int) -> list[Reservation]:
        """Return reservations ordered by expiry, after ``offset``."""
        if limit <= 0:
            return []
        rows = await self._rows(
            f"SELECT {RESERVATION_COLUMNS} FROM {{s}}.working ORDER BY expires_at, jid"
            " OFFSET %s LIMIT %s",
            (offset, limit),
        )
        return [reservation_of(row) for row in rows]

    @wrap_errors
    async def working_size(self) -> int:
        """Return the number of reservations."""
        row = await self._one("SELECT count(*) FROM {s}.working")
        return 0 if row is None else int(row[0])

    # -- counters ------------------------------------------------------------------

    @wrap_errors
    async def counters(self) -> Counters:
        """Return the lifetime processed and failure counters."""
        row = await self._one(
            "SELECT coalesce(sum(processed), 0), coalesce(sum(failures), 0)"
            " FROM {s}.counters WHERE key = 'total'"
        )
        return Counters(0, 0) if row is None else Counters(int(row[0]), int(row[1]))

    @wrap_errors
    async def history(self, days: Sequence[str]) -> list[DayCount]:
        """Return the counts of the listed UTC days, zero where none."""
        if not days:
            return []
        rows = await self._rows(
            "SELECT key, sum(processed), sum(failures) FROM {s}.counters"
            " WHERE key = ANY(%s::text[]) GROUP BY key",
            (list(days),),
        )
        found = {str(key): (int(p), int(f)) for key, p, f in rows}
        return [DayCount(d, *found.get(d, (0, 0))) for d in days]

    # -- worker processes -------------------------------------------------------------

    @wrap_errors
    async def put_process(self, process: Process) -> None:
        """Create or replace the record of a worker process (shared by every server)."""
        await self._count(
            "INSERT INTO {s}.processes (wid, record) VALUES (%s, %s)"
            " ON CONFLICT (wid) DO UPDATE SET record = excluded.record",
            (process.wid, json.dumps(asdict(process))),
        )

    @wrap_errors
    async def get_process(self, wid: str) -> Process | None:
        """Return the record of a worker process, if known."""
        row = await self._one("SELECT record FROM {s}.processes WHERE wid = %s", (wid,))
        return None if row is None else Process(**json.loads(row[0]))

    @wrap_errors
    async def processes(self) -> list[Process]:
        """Return every known worker process, from every server."""
        rows = await self._rows("SELECT record FROM {s}.processes ORDER BY wid")
        return [Process(**json.loads(row[0])) for row in rows]

    @wrap_errors
    async def delete_process(self, wid: str) -> None:
        """Forget a worker process."""
        await self._count("DELETE FROM {s}.processes WHERE wid = %s", (wid,))

    # -- everything -----------------------------------------------------------------

    @wrap_errors
    async def flush(self) -> None:
        """Delete every job, set, queue, pause and counter, and every lock, record and
        limiter; worker processes stay."""
        tables = FLUSHED
        async with self._txn() as conn:
            for table in tables:
                await conn.execute(self._sql(f"DELETE FROM {{s}}.{table}"))


_: type[Store] = PostgresStore

__all__ = ["PostgresStore"]
