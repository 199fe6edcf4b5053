"""The PostgreSQL store's time-ordered sets (scheduled, retries, dead) and failure placement.

Rows of ``sets`` are keyed by ``(name, jid)`` and read through ``(name, score, jid)``, so
``next_due`` and the due scans cost O(log n + due). Moves into queues are one statement
each (DELETE ... RETURNING feeding INSERTs), rows picked with ``FOR UPDATE SKIP LOCKED`` so
two servers moving due jobs at once never move one twice. Filters match in SQL; globs
(``set_match``) match in Python over a scan, as on the other backends.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from psycopg.rows import TupleRow

from werk.storage.base import Placement, Reservation, Scored, SetFilter, SetName
from werk.storage.matching import glob, is_empty, utc_day
from werk.storage.postgres.core import (
    RESERVATION_COLUMNS,
    PgCore,
    entry_of,
    listed,
    reservation_of,
    wrap_errors,
)
from werk.storage.postgres.schema import SHARDS

SET_COLUMNS = "jid, queue, jobtype, priority, reserve_for, body, score"

MOVE = """
WITH m AS (
  DELETE FROM {s}.sets WHERE name = %(name)s AND jid IN (
    SELECT jid FROM {s}.sets WHERE name = %(name)s AND PICK
    ORDER BY score, jid LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
  RETURNING *
), known AS (
  INSERT INTO {s}.queues (name) SELECT DISTINCT queue FROM m ON CONFLICT DO NOTHING
), added AS (
  INSERT INTO {s}.jobs (queue, priority, jid, jobtype, reserve_for, enqueued_at, body)
  SELECT queue, priority, jid, jobtype, reserve_for, %(now)s, body FROM m ORDER BY score, jid
)
SELECT queue, count(*) FROM m GROUP BY queue
"""

SET_MOVE = """
WITH m AS (DELETE FROM {s}.sets WHERE name = %s AND jid = ANY(%s::text[]) RETURNING *)
INSERT INTO {s}.sets (name, jid, score, queue, jobtype, priority, reserve_for, body)
SELECT %s, jid, %s, queue, jobtype, priority, reserve_for, body FROM m
ON CONFLICT (name, jid) DO UPDATE SET score = excluded.score, queue = excluded.queue,
  jobtype = excluded.jobtype, priority = excluded.priority,
  reserve_for = excluded.reserve_for, body = excluded.body
RETURNING jid
"""

UPSERT = """
INSERT INTO {s}.sets (name, jid, score, queue, jobtype, priority, reserve_for, body)
SELECT %s, * FROM unnest(%s::text[], %s::float8[], %s::text[], %s::text[], %s::smallint[],
                         %s::integer[], %s::bytea[])
ON CONFLICT (name, jid) DO UPDATE SET score = excluded.score, queue = excluded.queue,
  jobtype = excluded.jobtype, priority = excluded.priority,
  reserve_for = excluded.reserve_for, body = excluded.body
"""

RELEASE = """
WITH w AS (DELETE FROM {s}.working WHERE jid = %(jid)s AND expires_at <= %(deadline)s
           RETURNING *),
counted AS (
  INSERT INTO {s}.counters AS c (key, shard, processed, failures)
  SELECT k, %(shard)s, 1, %(failed)s FROM unnest(ARRAY['total', %(day)s]) k
  WHERE EXISTS (SELECT 1 FROM w)
  ON CONFLICT (key, shard) DO UPDATE
  SET processed = c.processed + 1, failures = c.failures + excluded.failures
), placed AS (
  INSERT INTO {s}.sets AS s (name, jid, score, queue, jobtype, priority, reserve_for, body)
  SELECT %(set)s::text, jid, %(score)s, %(queue)s, %(jobtype)s, %(priority)s,
         %(reserve_for)s, %(body)s FROM w WHERE %(set)s::text IS NOT NULL
  ON CONFLICT (name, jid) DO UPDATE SET score = excluded.score, queue = excluded.queue,
    jobtype = excluded.jobtype, priority = excluded.priority,
    reserve_for = excluded.reserve_for, body = excluded.body
)
SELECT RESERVATION_COLUMNS FROM w
  CROSS JOIN (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed
""".replace("RESERVATION_COLUMNS", RESERVATION_COLUMNS)

MOVE_CHUNK = 1000
"""Entries moved per statement when a whole set is requeued."""


def scored(row: TupleRow) -> Scored:
    """Build a set entry from :data:`SET_COLUMNS`."""
    return Scored(float(row[6]), entry_of(row))


def where_sql(where: SetFilter | None) -> tuple[str, list[Any]]:
    """Return the SQL conditions (each starting with `` AND``) and parameters of a filter."""
    if where is None:
        return "", []
    text, params = "", list[Any]()
    if where.queue is not None:
        text, params = text + " AND queue = %s", [*params, where.queue]
    if where.jobtype is not None:
        text, params = text + " AND jobtype = %s", [*params, where.jobtype]
    if where.text is not None:
        text, params = text + " AND position(%s::bytea in body) > 0", [*params, where.text.encode()]
    return text, params


class PgSets(PgCore):
    """The set operations of :class:`~werk.storage.postgres.PostgresStore`."""

    async def _place(
        self, jid: str, now: float, placement: Placement | None, deadline: float
    ) -> bool:
        params = self._release_params(jid, now, deadline, 1)
        if placement is not None:
            e = placement.entry
            params.update(
                set=placement.set,
                score=placement.score,
                queue=e.queue,
                jobtype=e.jobtype,
                priority=e.priority,
                reserve_for=e.reserve_for,
                body=e.body,
            )
        return await self._release(params) is not None

    def _release_params(self, jid: str, now: float, deadline: float, failed: int) -> dict[str, Any]:
        return {
            "jid": jid,
            "deadline": deadline,
            "shard": random.randrange(SHARDS),
            "failed": failed,
            "day": utc_day(now),
            "set": None,
            "score": None,
            "queue": None,
            "jobtype": None,
            "priority": None,
            "reserve_for": None,
            "body": None,
        }

    async def _release(self, params: dict[str, Any]) -> Reservation | None:
        row = await self._one(RELEASE, params)
        return None if row is None else reservation_of(row)

    @wrap_errors
    async def fail(self, jid: str, now: float, placement: Placement | None) -> bool:
        """Release a reservation, count it as failed, and place the job (or discard it)."""
        return await self._place(jid, now, placement, float("inf"))

    @wrap_errors
    async def expire(self, jid: str, now: float, placement: Placement | None) -> bool:
        """Like :meth:`fail`, only while the reservation's expiry is still <= ``now``."""
        return await self._place(jid, now, placement, now)

    @wrap_errors
    async def add(self, name: SetName, items: Sequence[Scored]) -> None:
        """Add (or replace, by jid) entries in a set, in one statement."""
        if not items:
            return
        latest = {i.entry.jid: i for i in items}.values()  # one row per jid, the last wins
        columns: list[list[Any]] = [
            [i.entry.jid for i in latest],
            [i.score for i in latest],
            [i.entry.queue for i in latest],
            [i.entry.jobtype for i in latest],
            [i.entry.priority for i in latest],
            [i.entry.reserve_for for i in latest],
            [i.entry.body for i in latest],
        ]
        await self._count(UPSERT, (name, *columns))

    @wrap_errors
    async def move_due(self, name: SetName, now: float, limit: int) -> int:
        """Move up to ``limit`` due entries into their queues; return how many moved."""
        if limit <= 0:
            return 0
        return await self._moved(name, now, "score <= %(now)s", {"limit": limit})

    async def _moved(self, name: SetName, now: float, pick: str, extra: dict[str, Any]) -> int:
        params = {"name": name, "now": now, **extra}
        text = MOVE.replace("PICK", pick)
        async with self._txn() as conn:
            cur = await conn.execute(self._sql(text), params)
            rows = await cur.fetchall()
            queues = [str(row[0]) for row in rows]
            await self._announce(conn, queues)
        self._notify(queues)
        return sum(int(row[1]) for row in rows)

    @wrap_errors
    async def requeue(self, name: SetName, jids: Sequence[str] | None, now: float) -> int:
        """Move the listed entries (``None``: all) to their queues; return how many."""
        if jids is not None:
            if not jids:
                return 0
            extra = {"limit": len(jids), "jids": list(jids)}
            return await self._moved(name, now, "jid = ANY(%(jids)s::text[])", extra)
        total = 0
        while True:
            moved = await self._moved(name, now, "true", {"limit": MOVE_CHUNK})
            total += moved
            if moved < MOVE_CHUNK:
                return total

    @wrap_errors
    async def next_due(self, name: SetName) -> float | None:
        """Return the lowest score in a set, or ``None`` when it is empty."""
        row = await self._one(
            "SELECT score FROM {s}.sets WHERE name = %s ORDER BY score LIMIT 1", (name,)
        )
        return None if row is None else float(row[0])

    @wrap_errors
    async def set_size(self, name: SetName) -> int:
        """Return the number of entries in a set."""
        row = await self._one("SELECT count(*) FROM {s}.sets WHERE name = %s", (name,))
        return 0 if row is None else int(row[0])

    @wrap_errors
    async def set_page(
        self,
        name: SetName,
        offset: int,
        limit: int,
        *,
        reverse: bool = False,
        where: SetFilter | None = None,
    ) -> list[Scored]:
        """Return a page of a set by score, filtered in SQL."""
        if limit <= 0:
            return []
        cond, params = where_sql(None if is_empty(where) else where)
        order = "score DESC, jid DESC" if reverse else "score, jid"
        rows = await self._rows(
            f"SELECT {SET_COLUMNS} FROM {{s}}.sets WHERE name = %s{cond}"
            f" ORDER BY {order} OFFSET %s LIMIT %s",
            (name, *params, offset, limit),
        )
        return [scored(row) for row in rows]

    @wrap_errors
    async def set_count(self, name: SetName, where: SetFilter) -> int:
        """Return how many entries of a set match ``where``."""
        cond, params = where_sql(where)
        row = await self._one(
            f"SELECT count(*) FROM {{s}}.sets WHERE name = %s{cond}", (name, *params)
        )
        return 0 if row is None else int(row[0])

    @wrap_errors
    async def set_get(self, name: SetName, jid: str) -> Scored | None:
        """Return the entry of ``jid`` in a set, if present."""
        row = await self._one(
            f"SELECT {SET_COLUMNS} FROM {{s}}.sets WHERE name = %s AND jid = %s", (name, jid)
        )
        return None if row is None else scored(row)

    @wrap_errors
    async def set_match(self, name: SetName, pattern: str | None) -> list[Scored]:
        """Return every entry whose body matches a Redis-MATCH glob, in score order."""
        rows = await self._rows(
            f"SELECT {SET_COLUMNS} FROM {{s}}.sets WHERE name = %s ORDER BY score, jid", (name,)
        )
        items = [scored(row) for row in rows]
        if pattern is None:
            return items
        regex = glob(pattern)
        return [item for item in items if regex.match(item.entry.body)]

    @wrap_errors
    async def set_remove(self, name: SetName, jids: Sequence[str]) -> list[str]:
        """Remove the listed entries; return the jids of those removed, in the listed
        order."""
        if not jids:
            return []
        rows = await self._rows(
            "DELETE FROM {s}.sets WHERE name = %s AND jid = ANY(%s::text[]) RETURNING jid",
            (name, list(jids)),
        )
        return listed(jids, rows)

    @wrap_errors
    async def set_move(
        self, name: SetName, jids: Sequence[str], to: SetName, score: float
    ) -> list[str]:
        """Move the listed entries to another set with a new score; return the jids of
        those moved, in the listed order."""
        if not jids:
            return []
        return listed(jids, await self._rows(SET_MOVE, (name, list(jids), to, score)))

    @wrap_errors
    async def remove_before(self, name: SetName, now: float, limit: int) -> int:
        """Delete up to ``limit`` entries with ``score <= now``; return how many."""
        if limit <= 0:
            return 0
        return await self._count(
            "DELETE FROM {s}.sets WHERE name = %s AND jid IN (SELECT jid FROM {s}.sets"
            " WHERE name = %s AND score <= %s ORDER BY score, jid LIMIT %s"
            " FOR UPDATE SKIP LOCKED)",
            (name, name, now, limit),
        )
