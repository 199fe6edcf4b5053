"""The coordination half of the PostgreSQL store: locks, records, counters and limiters.

Locks are one upsert each (``ON CONFLICT ... DO UPDATE ... WHERE`` the holder is the same
or its time is over), which PostgreSQL runs atomically against every other server: that
is what makes cron ticks and batch callbacks happen once across servers. Counters are one
upsert plus a read in one transaction. A limiter runs in a transaction holding its row
``FOR UPDATE``, so the arithmetic of :mod:`werk.storage.limits` (shared with the other
backends) sees no concurrent change. Tables: see :mod:`werk.storage.postgres.schema`.
"""

from __future__ import annotations

import math

from werk.storage.base import LimitKind, LimitResult
from werk.storage.limits import LEAK_EPSILON, PURGE, bucket_start, check_limits, leaky_level, units
from werk.storage.matching import prefix_bound
from werk.storage.postgres.core import Conn, PgCore, wrap_errors

CLAIM = """
INSERT INTO {s}.locks AS l (key, owner, expires_at) VALUES (%(key)s, %(owner)s, %(until)s)
ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE l.owner = excluded.owner OR l.expires_at <= %(now)s
RETURNING 1
"""

PURGE_SQL = """
DELETE FROM {s}.TABLE WHERE key IN (SELECT key FROM {s}.TABLE WHERE expires_at <= %s
  ORDER BY expires_at LIMIT LIMIT FOR UPDATE SKIP LOCKED)
""".replace("LIMIT FOR", f"{PURGE} FOR")

_State = tuple[str, int, float, float, float, int]
"""A ``limiters`` row without its name: kind, lim, period, start, level, seq."""


class PgCoord(PgCore):
    """The coordination methods of :class:`~werk.storage.postgres.PostgresStore`."""

    async def _purge(self, table: str, now: float) -> None:
        # Expired rows are invisible already; deleting a few per write keeps tables small.
        await self._count(PURGE_SQL.replace("TABLE", table), (now,))

    @wrap_errors
    async def claim(self, key: str, owner: str, ttl: float, now: float) -> bool:
        """Take (or extend) the lock ``key`` for ``owner`` until ``now + ttl``."""
        params = {"key": key, "owner": owner, "until": now + ttl, "now": now}
        won = await self._one(CLAIM, params) is not None
        if won:
            await self._purge("locks", now)
        return won

    @wrap_errors
    async def release(self, key: str, owner: str | None) -> bool:
        """Drop the lock ``key`` if ``owner`` holds it (``None``: whoever holds it)."""
        if owner is None:
            return await self._count("DELETE FROM {s}.locks WHERE key = %s", (key,)) > 0
        found = await self._count(
            "DELETE FROM {s}.locks WHERE key = %s AND owner = %s", (key, owner)
        )
        return found > 0

    @wrap_errors
    async def put_record(self, key: str, value: bytes, ttl: float | None, now: float) -> None:
        """Store ``value`` under ``key`` until ``now + ttl`` (forever for ``None``)."""
        await self._count(
            "INSERT INTO {s}.records (key, value, expires_at) VALUES (%s, %s, %s)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
            " expires_at = excluded.expires_at",
            (key, bytes(value), None if ttl is None else now + ttl),
        )
        await self._purge("records", now)

    @wrap_errors
    async def get_record(self, key: str, now: float) -> bytes | None:
        """Return the value under ``key`` unless absent or expired."""
        row = await self._one(
            "SELECT value FROM {s}.records WHERE key = %s"
            " AND (expires_at IS NULL OR expires_at > %s)",
            (key, now),
        )
        return None if row is None else bytes(row[0])

    @wrap_errors
    async def delete_record(self, key: str) -> None:
        """Delete the record ``key`` and its counters."""
        async with self._txn() as conn:
            await conn.execute(self._sql("DELETE FROM {s}.records WHERE key = %s"), (key,))
            await conn.execute(self._sql("DELETE FROM {s}.counts WHERE key = %s"), (key,))

    @wrap_errors
    async def records(self, prefix: str, now: float) -> list[tuple[str, bytes]]:
        """Return every unexpired ``(key, value)`` whose key starts with ``prefix``."""
        bound = prefix_bound(prefix)
        upper = "" if bound is None else " AND key < %s"
        params = [prefix, *([] if bound is None else [bound]), now]
        rows = await self._rows(
            f"SELECT key, value FROM {{s}}.records WHERE key >= %s{upper}"
            " AND (expires_at IS NULL OR expires_at > %s) ORDER BY key",
            params,
        )
        return [(str(k), bytes(v)) for k, v in rows]

    @wrap_errors
    async def add_counts(self, key: str, deltas: dict[str, int]) -> dict[str, int]:
        """Add ``deltas`` to the counters of ``key``; return all of them after."""
        names = sorted(deltas)  # one lock order, so two writers never deadlock
        async with self._txn() as conn:
            if names:
                await conn.execute(
                    self._sql(
                        "INSERT INTO {s}.counts AS c (key, name, value)"
                        " SELECT %s, * FROM unnest(%s::text[], %s::bigint[])"
                        " ON CONFLICT (key, name) DO UPDATE SET value = c.value + excluded.value"
                    ),
                    (key, names, [int(deltas[n]) for n in names]),
                )
            cur = await conn.execute(
                self._sql("SELECT name, value FROM {s}.counts WHERE key = %s ORDER BY name"),
                (key,),
            )
            return {str(name): int(value) for name, value in await cur.fetchall()}

    # -- limiters ---------------------------------------------------------------------

    @wrap_errors
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
        async with self._txn() as conn:
            return await self._acquire(conn, name, kind, limit, period, holder, now)

    async def _state(self, conn: Conn, name: str, lock: bool) -> _State | None:
        cur = await conn.execute(
            self._sql(
                "SELECT kind, lim, period, start, level, seq FROM {s}.limiters WHERE name = %s"
                + (" FOR UPDATE" if lock else "")
            ),
            (name,),
        )
        row = await cur.fetchone()
        if row is None or row[0] == "":
            return None
        return (str(row[0]), int(row[1]), float(row[2]), float(row[3]), float(row[4]), int(row[5]))

    async def _acquire(
        self,
        conn: Conn,
        name: str,
        kind: LimitKind,
        limit: int,
        period: float,
        holder: str,
        now: float,
    ) -> LimitResult:
        await conn.execute(
            self._sql(
                "INSERT INTO {s}.limiters (name, kind, lim, period, start, level, seq)"
                " VALUES (%s, '', 0, 0, 0, 0, 0) ON CONFLICT DO NOTHING"
            ),
            (name,),
        )
        state = await self._state(conn, name, lock=True)
        if state is None or state[0] != kind:  # new, or its kind changed: start afresh
            await conn.execute(self._sql("DELETE FROM {s}.limit_units WHERE name = %s"), (name,))
            state = (
                kind,
                limit,
                period,
                bucket_start(now, period) if kind == "bucket" else now,
                0,
                0,
            )
        _, _, _, start, level, seq = state
        if kind == "concurrent":
            result = await self._concurrent(conn, name, limit, now + period, holder, now)
        elif kind == "window":
            result = await self._window(conn, name, limit, period, f"{holder}:{seq + 1}", now)
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
            rate = limit / period
            level, start = leaky_level(level, start, now, rate)
            if level + 1 <= limit + LEAK_EPSILON:
                level += 1
                result = LimitResult(True, 0.0, units(level))
            else:
                result = LimitResult(False, (level + 1 - limit) / rate, units(level))
        await conn.execute(
            self._sql(
                "UPDATE {s}.limiters SET kind = %s, lim = %s, period = %s, start = %s,"
                " level = %s, seq = %s WHERE name = %s"
            ),
            (kind, limit, period, start, level, seq, name),
        )
        return result

    async def _units(self, conn: Conn, name: str, above: float) -> tuple[int, float | None]:
        cur = await conn.execute(
            self._sql(
                "SELECT count(*), min(score) FROM {s}.limit_units WHERE name = %s AND score > %s"
            ),
            (name, above),
        )
        row = await cur.fetchone()
        assert row is not None
        return int(row[0]), (None if row[1] is None else float(row[1]))

    async def _concurrent(
        self, conn: Conn, name: str, limit: int, until: float, holder: str, now: float
    ) -> LimitResult:
        await conn.execute(
            self._sql("DELETE FROM {s}.limit_units WHERE name = %s AND score <= %s"), (name, now)
        )
        held, first = await self._units(conn, name, -math.inf)
        cur = await conn.execute(
            self._sql("UPDATE {s}.limit_units SET score = %s WHERE name = %s AND unit = %s"),
            (until, name, holder),
        )
        if cur.rowcount:
            return LimitResult(True, 0.0, held)
        if held < limit:
            await conn.execute(
                self._sql("INSERT INTO {s}.limit_units (name, unit, score) VALUES (%s, %s, %s)"),
                (name, holder, until),
            )
            return LimitResult(True, 0.0, held + 1)
        return LimitResult(False, (first or now) - now, held)

    async def _window(
        self, conn: Conn, name: str, limit: int, period: float, unit: str, now: float
    ) -> LimitResult:
        await conn.execute(
            self._sql("DELETE FROM {s}.limit_units WHERE name = %s AND score <= %s"),
            (name, now - period),
        )
        held, first = await self._units(conn, name, -math.inf)
        if held < limit:
            await conn.execute(
                self._sql("INSERT INTO {s}.limit_units (name, unit, score) VALUES (%s, %s, %s)"),
                (name, unit, now),
            )
            return LimitResult(True, 0.0, held + 1)
        return LimitResult(False, (first or now) + period - now, held)

    @wrap_errors
    async def limit_release(self, name: str, holder: str) -> bool:
        """Give back ``holder``'s unit of a ``concurrent`` limiter."""
        found = await self._count(
            "DELETE FROM {s}.limit_units u USING {s}.limiters l WHERE u.name = %s"
            " AND u.unit = %s AND l.name = u.name AND l.kind = 'concurrent'",
            (name, holder),
        )
        return found > 0

    @wrap_errors
    async def limit_status(self, name: str, now: float) -> int:
        """Return how many units of limiter ``name`` count against it at ``now``."""
        async with self._conn() as conn:
            state = await self._state(conn, name, lock=False)
            if state is None:
                return 0
            kind, limit, period, start, level, _ = state
            if kind == "concurrent":
                return (await self._units(conn, name, now))[0]
            if kind == "window":
                return (await self._units(conn, name, now - period))[0]
        if kind == "bucket":
            return int(level) if bucket_start(now, period) <= start else 0
        return units(leaky_level(level, start, now, limit / period)[0])
