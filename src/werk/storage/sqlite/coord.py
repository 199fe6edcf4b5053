"""The coordination half of the SQLite store: locks, records, counters and limiters.

Every mutation is one function of a writer :class:`~werk.storage.sqlite.batch.Batch`, so
it reads and writes inside the writer thread's transaction; that thread runs operations
one at a time and only this process writes the file (``werk.lock``), so each is atomic.
Reads use the loop's connection (short indexed lookups) or the reader thread (listings).

Tables (migration ``0002_coordination`` in :mod:`werk.storage.sqlite.schema`):

- ``locks(key, owner, expires_at)``; ``records(key, value, expires_at)`` (``NULL``: never);
  both indexed by expiry so a write purges up to ``PURGE`` expired rows as it goes.
- ``counts(key, name, value)``: the counters of :meth:`CoordMixin.add_counts`.
- ``limiters(name, kind, lim, period, start, level, seq)``: a limiter's last settings and
  its scalar state (``bucket``: interval start and count; ``leaky``: last time and level).
- ``limit_units(name, unit, score)``: ``concurrent`` holders (score = hold expiry) and the
  ``window`` log (unit ``<holder>:<seq>``, score = acquisition time).
"""

from __future__ import annotations

import math
import sqlite3
from typing import Any

from werk.storage.base import LimitKind, LimitResult
from werk.storage.limits import LEAK_EPSILON, PURGE, bucket_start, check_limits, leaky_level, units
from werk.storage.matching import prefix_bound
from werk.storage.sqlite.batch import Batch
from werk.storage.sqlite.queues import QueueMixin

# -- locks, records, counters (writer) ---------------------------------------------------


def claim(b: Batch, key: str, owner: str, until: float, now: float) -> bool:
    """Take or extend a lock unless another owner holds it unexpired."""
    row = b.conn.execute("SELECT owner, expires_at FROM locks WHERE key = ?", (key,)).fetchone()
    if row is not None and row[0] != owner and row[1] > now:
        return False
    b.conn.execute(
        "INSERT OR REPLACE INTO locks (key, owner, expires_at) VALUES (?, ?, ?)",
        (key, owner, until),
    )
    _purge(b.conn, "locks", now)
    return True


def release(b: Batch, key: str, owner: str | None) -> bool:
    """Drop a lock held by ``owner`` (``None``: by anyone)."""
    if owner is None:
        cur = b.conn.execute("DELETE FROM locks WHERE key = ?", (key,))
    else:
        cur = b.conn.execute("DELETE FROM locks WHERE key = ? AND owner = ?", (key, owner))
    return cur.rowcount > 0


def put_record(b: Batch, key: str, value: bytes, until: float | None, now: float) -> None:
    """Create or replace a record."""
    b.conn.execute(
        "INSERT OR REPLACE INTO records (key, value, expires_at) VALUES (?, ?, ?)",
        (key, value, until),
    )
    _purge(b.conn, "records", now)


def _purge(conn: sqlite3.Connection, table: str, now: float) -> None:
    # Expired rows are invisible already; deleting a few per write keeps the table small.
    conn.execute(
        f"DELETE FROM {table} WHERE key IN (SELECT key FROM {table}"
        " WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)",
        (now, PURGE),
    )


def delete_record(b: Batch, key: str) -> None:
    """Delete a record and its counters."""
    b.conn.execute("DELETE FROM records WHERE key = ?", (key,))
    b.conn.execute("DELETE FROM counts WHERE key = ?", (key,))


def add_counts(b: Batch, key: str, deltas: dict[str, int]) -> dict[str, int]:
    """Add to the counters of ``key``; return all of them."""
    b.conn.executemany(
        "INSERT INTO counts (key, name, value) VALUES (?, ?, ?)"
        " ON CONFLICT (key, name) DO UPDATE SET value = value + excluded.value",
        [(key, name, delta) for name, delta in deltas.items()],
    )
    return read_counts(b.conn, key)


# -- reads ------------------------------------------------------------------------------


def get_record(conn: sqlite3.Connection, key: str, now: float) -> bytes | None:
    """Return an unexpired record's value."""
    row = conn.execute(
        "SELECT value FROM records WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
        (key, now),
    ).fetchone()
    return None if row is None else bytes(row[0])


def records(conn: sqlite3.Connection, prefix: str, now: float) -> list[tuple[str, bytes]]:
    """Return the unexpired records whose key starts with ``prefix``, by key."""
    sql = "SELECT key, value FROM records WHERE key >= ?"
    params: list[Any] = [prefix]
    bound = prefix_bound(prefix)
    if bound is not None:
        sql, params = sql + " AND key < ?", [*params, bound]
    sql += " AND (expires_at IS NULL OR expires_at > ?) ORDER BY key"
    return [(k, bytes(v)) for k, v in conn.execute(sql, (*params, now)).fetchall()]


def read_counts(conn: sqlite3.Connection, key: str) -> dict[str, int]:
    """Return every counter of ``key`` by name."""
    rows = conn.execute("SELECT name, value FROM counts WHERE key = ? ORDER BY name", (key,))
    return {name: int(value) for name, value in rows.fetchall()}


# -- limiters ---------------------------------------------------------------------------

_State = tuple[str, int, float, float, float, int]
"""A ``limiters`` row without its name: kind, lim, period, start, level, seq."""


def _state(conn: sqlite3.Connection, name: str) -> _State | None:
    row = conn.execute(
        "SELECT kind, lim, period, start, level, seq FROM limiters WHERE name = ?", (name,)
    ).fetchone()
    return None if row is None else (row[0], row[1], row[2], row[3], row[4], row[5])


def _count(conn: sqlite3.Connection, name: str, above: float) -> int:
    row = conn.execute(
        "SELECT count(*) FROM limit_units WHERE name = ? AND score > ?", (name, above)
    ).fetchone()
    return int(row[0])


def _first(conn: sqlite3.Connection, name: str) -> float:
    row = conn.execute("SELECT min(score) FROM limit_units WHERE name = ?", (name,)).fetchone()
    return float(row[0])


def limit_acquire(
    b: Batch, name: str, kind: LimitKind, limit: int, period: float, holder: str, now: float
) -> LimitResult:
    """Take one unit of a limiter (see :meth:`CoordMixin.limit_acquire`)."""
    conn = b.conn
    state = _state(conn, name)
    if state is None or state[0] != kind:  # new, or its kind changed: start afresh
        conn.execute("DELETE FROM limit_units WHERE name = ?", (name,))
        state = (kind, limit, period, bucket_start(now, period) if kind == "bucket" else now, 0, 0)
    _, _, _, start, level, seq = state
    if kind == "concurrent":
        result = _concurrent(conn, name, limit, now + period, holder, now)
    elif kind == "window":
        result = _window(conn, name, limit, period, f"{holder}:{seq + 1}", now)
        seq += result.acquired
    elif kind == "bucket":
        current = bucket_start(now, period)
        if current > start:
            start, level = current, 0
        if level < limit:
            level += 1
            result = LimitResult(True, 0.0, int(level))
        else:
            result = LimitResult(False, start + period - now, int(level))
    else:
        result, start, level = _leaky(limit, period, start, level, now)
    conn.execute(
        "INSERT OR REPLACE INTO limiters (name, kind, lim, period, start, level, seq)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (name, kind, limit, period, start, level, seq),
    )
    return result


def _concurrent(
    conn: sqlite3.Connection, name: str, limit: int, until: float, holder: str, now: float
) -> LimitResult:
    conn.execute("DELETE FROM limit_units WHERE name = ? AND score <= ?", (name, now))
    held = _count(conn, name, -math.inf)
    cur = conn.execute(
        "UPDATE limit_units SET score = ? WHERE name = ? AND unit = ?", (until, name, holder)
    )
    if cur.rowcount:
        return LimitResult(True, 0.0, held)
    if held < limit:
        conn.execute(
            "INSERT INTO limit_units (name, unit, score) VALUES (?, ?, ?)", (name, holder, until)
        )
        return LimitResult(True, 0.0, held + 1)
    return LimitResult(False, _first(conn, name) - now, held)


def _window(
    conn: sqlite3.Connection, name: str, limit: int, period: float, unit: str, now: float
) -> LimitResult:
    conn.execute("DELETE FROM limit_units WHERE name = ? AND score <= ?", (name, now - period))
    held = _count(conn, name, -math.inf)
    if held < limit:
        conn.execute(
            "INSERT INTO limit_units (name, unit, score) VALUES (?, ?, ?)", (name, unit, now)
        )
        return LimitResult(True, 0.0, held + 1)
    return LimitResult(False, _first(conn, name) + period - now, held)


def _leaky(
    limit: int, period: float, last: float, level: float, now: float
) -> tuple[LimitResult, float, float]:
    rate = limit / period
    level, last = leaky_level(level, last, now, rate)
    if level + 1 <= limit + LEAK_EPSILON:
        level += 1
        return LimitResult(True, 0.0, units(level)), last, level
    return LimitResult(False, (level + 1 - limit) / rate, units(level)), last, level


def limit_release(b: Batch, name: str, holder: str) -> bool:
    """Give back a ``concurrent`` holder's unit."""
    state = _state(b.conn, name)
    if state is None or state[0] != "concurrent":
        return False
    cur = b.conn.execute("DELETE FROM limit_units WHERE name = ? AND unit = ?", (name, holder))
    return cur.rowcount > 0


def limit_status(conn: sqlite3.Connection, name: str, now: float) -> int:
    """Count the units of a limiter that count against it at ``now``."""
    state = _state(conn, name)
    if state is None:
        return 0
    kind, limit, period, start, level, _ = state
    if kind == "concurrent":
        return _count(conn, name, now)
    if kind == "window":
        return _count(conn, name, now - period)
    if kind == "bucket":
        return int(level) if bucket_start(now, period) <= start else 0
    return units(leaky_level(level, start, now, limit / period)[0])


class CoordMixin(QueueMixin):
    """The coordination methods of :class:`~werk.storage.sqlite.store.SqliteStore`.

    Writes go through the writer thread and are durable on return; reads see every write
    that returned. See the module docstring for the tables.
    """

    async def claim(self, key: str, owner: str, ttl: float, now: float) -> bool:
        """Take (or extend) the lock ``key`` for ``owner`` until ``now + ttl``."""
        until = now + ttl
        return await self._open_writer().call(lambda b: claim(b, key, owner, until, now))

    async def release(self, key: str, owner: str | None) -> bool:
        """Drop the lock ``key`` if ``owner`` holds it (``None``: whoever holds it)."""
        return await self._open_writer().call(lambda b: release(b, key, owner))

    async def put_record(self, key: str, value: bytes, ttl: float | None, now: float) -> None:
        """Store ``value`` under ``key`` until ``now + ttl`` (forever for ``None``)."""
        until = None if ttl is None else now + ttl
        data = bytes(value)
        await self._open_writer().call(lambda b: put_record(b, key, data, until, now))

    async def get_record(self, key: str, now: float) -> bytes | None:
        """Return the value under ``key`` unless absent or expired."""
        return self._guard_read(lambda conn: get_record(conn, key, now))

    async def delete_record(self, key: str) -> None:
        """Delete the record ``key`` and its counters."""
        await self._open_writer().call(lambda b: delete_record(b, key))

    async def records(self, prefix: str, now: float) -> list[tuple[str, bytes]]:
        """Return every unexpired ``(key, value)`` whose key starts with ``prefix``."""
        return await self._read(lambda conn: records(conn, prefix, now))

    async def add_counts(self, key: str, deltas: dict[str, int]) -> dict[str, int]:
        """Add ``deltas`` to the counters of ``key``; return all of them after."""
        if not deltas:
            return self._guard_read(lambda conn: read_counts(conn, key))
        changes = dict(deltas)
        return await self._open_writer().call(lambda b: add_counts(b, key, changes))

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

        Raises:
            ValueError: ``limit`` is below 1 or ``period`` is not positive.
        """
        check_limits(limit, period)
        call = self._open_writer().call
        return await call(lambda b: limit_acquire(b, name, kind, limit, period, holder, now))

    async def limit_release(self, name: str, holder: str) -> bool:
        """Give back ``holder``'s unit of a ``concurrent`` limiter."""
        return await self._open_writer().call(lambda b: limit_release(b, name, holder))

    async def limit_status(self, name: str, now: float) -> int:
        """Return how many units of limiter ``name`` count against it at ``now``."""
        return self._guard_read(lambda conn: limit_status(conn, name, now))
