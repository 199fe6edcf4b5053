"""What every part of the PostgreSQL store shares: the pool, errors, notifications.

:class:`PgCore` holds the connection pool (autocommit connections: a single statement is
its own transaction; several run inside ``conn.transaction()``), turns driver errors into
:class:`~werk.errors.StorageError`, and announces queues that may have become fetchable:
``NOTIFY <schema>_available`` in the writing transaction (delivered to every server at
commit) and this process's own callbacks once the transaction has committed.

An *intake* transaction (:mod:`werk.storage.postgres.intake`) binds one connection in a
context variable: while it is bound, every store call on that task runs on it, inside
that one transaction, and local callbacks wait until it commits.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final, ParamSpec, TypeVar

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from werk.errors import StorageError
from werk.storage.base import AvailableCallback, Entry, Reservation
from werk.storage.stall import StallWatch

log = logging.getLogger(__name__)

Conn = psycopg.AsyncConnection[TupleRow]
NOTIFY_LIMIT: Final = 7000
"""Bytes of a NOTIFY payload above which it names no queues (PostgreSQL's limit is 8000):
receivers then wake every known queue."""

WATCH = StallWatch("postgres")
"""This process's PostgreSQL calls in flight: a frozen server is logged
(:mod:`werk.storage.stall`)."""

_P = ParamSpec("_P")
_R = TypeVar("_R")


def wrap_errors(fn: Callable[_P, Awaitable[_R]]) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """Turn psycopg (and socket) errors raised by ``fn`` into :class:`StorageError`."""

    @functools.wraps(fn)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        watched = WATCH.begin()
        ok = False
        try:
            result = await fn(*args, **kwargs)
            ok = True
            return result
        except (psycopg.Error, OSError) as exc:
            raise StorageError(f"postgres: {exc}") from exc
        finally:
            if watched:
                WATCH.end(ok)

    return wrapper


@dataclass(slots=True)
class Bound:
    """A connection held in an open transaction, and the queues it made fetchable."""

    store: object
    conn: Conn
    queues: list[str] = field(default_factory=list)


BOUND: contextvars.ContextVar[Bound | None] = contextvars.ContextVar("werk_pg_bound", default=None)


@functools.lru_cache(maxsize=512)
def sql(schema: str, text: str) -> bytes:
    """Return ``text`` with ``{s}`` replaced by the schema name (a checked identifier)."""
    return text.replace("{s}", schema).encode()


ENTRY_COLUMNS: Final = "jid, queue, jobtype, priority, reserve_for"
RESERVATION_COLUMNS: Final = f"{ENTRY_COLUMNS}, body, enqueued_at, reserved_at, expires_at, wid"


def listed(jids: Sequence[str], rows: Sequence[TupleRow]) -> list[str]:
    """The jids among ``rows`` (one ``RETURNING jid`` each), in the order of ``jids``,
    each once."""
    found = {str(row[0]) for row in rows}
    return [jid for jid in dict.fromkeys(jids) if jid in found]


def entry_of(row: TupleRow) -> Entry:
    """Build an entry from ``jid, queue, jobtype, priority, reserve_for, body`` columns."""
    return Entry(row[0], row[1], row[2], int(row[3]), int(row[4]), bytes(row[5]))


def reservation_of(row: TupleRow) -> Reservation:
    """Build a reservation from :data:`RESERVATION_COLUMNS`."""
    return Reservation(entry_of(row), float(row[6]), float(row[7]), float(row[8]), row[9])


class PgCore:
    """Pool, schema and notifications of :class:`~werk.storage.postgres.PostgresStore`."""

    _pool: AsyncConnectionPool[Conn]

    def __init__(self, schema: str, origin: str) -> None:
        self.schema = schema
        self.origin = origin
        self.channel = f"{schema}_available"
        self._callbacks: list[AvailableCallback] = []

    def _sql(self, text: str) -> bytes:
        return sql(self.schema, text)

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[Conn]:
        bound = BOUND.get()
        if bound is not None and bound.store is self:
            yield bound.conn
            return
        async with self._pool.connection() as conn:
            yield conn

    @asynccontextmanager
    async def _txn(self) -> AsyncIterator[Conn]:
        async with self._conn() as conn, conn.transaction():
            yield conn

    async def _rows(self, text: str, params: Any = None) -> list[TupleRow]:
        async with self._conn() as conn:
            cur = await conn.execute(self._sql(text), params)
            return await cur.fetchall()

    async def _one(self, text: str, params: Any = None) -> TupleRow | None:
        async with self._conn() as conn:
            cur = await conn.execute(self._sql(text), params)
            return await cur.fetchone()

    async def _count(self, text: str, params: Any = None) -> int:
        async with self._conn() as conn:
            cur = await conn.execute(self._sql(text), params)
            return cur.rowcount

    def payload(self, queues: Iterable[str]) -> str:
        """The NOTIFY payload announcing ``queues`` (no names when it would be too long)."""
        names = sorted(set(queues))
        text = json.dumps({"o": self.origin, "q": names})
        return text if len(text) <= NOTIFY_LIMIT else json.dumps({"o": self.origin, "q": None})

    async def _announce(self, conn: Conn, queues: list[str]) -> None:
        """NOTIFY other servers of ``queues``, at the commit of ``conn``'s transaction.

        The caller wakes this server's own waiters with :meth:`_notify` only after the
        commit: woken earlier, a waiter would look, find nothing yet, and sleep through
        the notification (its own, which the listener skips)."""
        if queues:
            await conn.execute("SELECT pg_notify(%s, %s)", (self.channel, self.payload(queues)))

    def _notify(self, queues: Iterable[str]) -> None:
        names = list(queues)
        if not names:
            return
        bound = BOUND.get()
        if bound is not None and bound.store is self:
            bound.queues.extend(names)  # the transaction has not committed yet
            return
        for callback in list(self._callbacks):
            try:
                callback(names)
            except Exception:  # a waiter's bug must not fail a committed write
                log.exception("postgres: on_available callback failed")
