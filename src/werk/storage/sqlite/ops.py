"""The SQL of the SQLite store: writes run on the writer thread, reads on a reader.

Every write takes a :class:`~werk.storage.sqlite.batch.Batch` and runs inside the
writer's open transaction; it returns what the loop needs to update its in-memory state.
Reads take a plain connection. Table layout: see :mod:`werk.storage.sqlite.schema`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict
from typing import Any

from werk.storage.base import Entry, Placement, Process, Queued, Scored, SetFilter
from werk.storage.matching import glob
from werk.storage.sqlite.batch import Batch

JOB_INSERT = (
    "INSERT INTO jobs (id, queue, priority, jid, jobtype, reserve_for, enqueued_at, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
SET_COLUMNS = "score, jid, queue, jobtype, priority, reserve_for, body"
CHUNK = 500
Moved = list[tuple[int, str, int]]
"""``(job_id, queue, priority)`` of jobs that entered queues."""


def chunks(items: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    """Split a list so that an ``IN (...)`` never has too many parameters."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _marks(n: int) -> str:
    return ",".join("?" * n)


# -- queues and reservations (writer) ------------------------------------------------------


def insert_jobs(
    b: Batch, entries: Sequence[Entry], now: float, new: Iterable[str], ids: range | None = None
) -> list[int]:
    """Insert queued jobs with ``ids``, or fresh ones; remember new queue names."""
    ids = b.ids.take(len(entries)) if ids is None else ids
    b.conn.executemany(
        JOB_INSERT,
        [
            (i, e.queue, e.priority, e.jid, e.jobtype, e.reserve_for, now, e.body)
            for i, e in zip(ids, entries, strict=True)
        ],
    )
    b.conn.executemany("INSERT OR IGNORE INTO queues (name) VALUES (?)", [(q,) for q in new])
    return list(ids)


def release(b: Batch, jid: str, job_id: int, keys: tuple[str, ...], failed: int) -> None:
    """Drop a reservation and its job row, counting it processed (and maybe failed)."""
    b.conn.execute("DELETE FROM working WHERE jid = ? AND job_id = ?", (jid, job_id))
    b.conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
    b.count(keys, 1, failed)


def fail(b: Batch, jid: str, job_id: int, keys: tuple[str, ...], to: Placement | None) -> int:
    """Release a reservation as failed and place the job; return the target set's growth."""
    release(b, jid, job_id, keys, 1)
    return 0 if to is None else put_set(b.conn, to.set, to.score, to.entry)


def extend(b: Batch, jid: str, expires_at: float) -> None:
    """Move a reservation's expiry."""
    b.conn.execute("UPDATE working SET expires_at = ? WHERE jid = ?", (expires_at, jid))


def delete_jobs(b: Batch, job_ids: Iterable[int]) -> None:
    """Delete queued jobs by id."""
    b.conn.executemany("DELETE FROM jobs WHERE id = ?", [(i,) for i in job_ids])


def set_paused(b: Batch, names: Iterable[str], paused: bool) -> None:
    """Mark queues paused or running."""
    b.conn.executemany(
        "UPDATE queues SET paused = ? WHERE name = ?", [(int(paused), n) for n in names]
    )


def remove_queues(b: Batch, names: Iterable[str], job_ids: Iterable[int]) -> None:
    """Delete queues and their queued jobs."""
    delete_jobs(b, job_ids)
    b.conn.executemany("DELETE FROM queues WHERE name = ?", [(n,) for n in names])


def flush(b: Batch) -> None:
    """Delete every job, reservation, set entry, queue and counter, and every lock, record
    and limiter (the tables of :mod:`werk.storage.sqlite.coord`)."""
    coordination = ("locks", "records", "counts", "limiters", "limit_units")
    for table in ("jobs", "working", "sets", "queues", "counters", *coordination):
        b.conn.execute(f"DELETE FROM {table}")


def put_process(b: Batch, process: Process) -> None:
    """Create or replace a worker process record."""
    b.conn.execute(
        "INSERT OR REPLACE INTO processes (wid, record) VALUES (?, ?)",
        (process.wid, json.dumps(asdict(process))),
    )


def delete_process(b: Batch, wid: str) -> None:
    """Forget a worker process."""
    b.conn.execute("DELETE FROM processes WHERE wid = ?", (wid,))


# -- time-ordered sets (writer) -----------------------------------------------------------


def put_set(conn: sqlite3.Connection, name: str, score: float, e: Entry) -> int:
    """Add or replace an entry of a set; return 1 if it is new there, else 0."""
    existed = conn.execute("SELECT 1 FROM sets WHERE name = ? AND jid = ?", (name, e.jid))
    new = existed.fetchone() is None
    conn.execute(
        "INSERT OR REPLACE INTO sets (name, jid, score, queue, jobtype, priority, reserve_for,"
        " body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (name, e.jid, score, e.queue, e.jobtype, e.priority, e.reserve_for, e.body),
    )
    return int(new)


def add(b: Batch, name: str, items: Sequence[Scored]) -> int:
    """Add or replace entries; return how many are new."""
    return sum(put_set(b.conn, name, item.score, item.entry) for item in items)


def _to_queues(b: Batch, rows: list[Any], now: float) -> Moved:
    """Move set rows ``(rowid, queue, priority, jid, jobtype, reserve_for, body)`` to queues."""
    ids = b.ids.take(len(rows))
    b.conn.executemany(
        JOB_INSERT,
        [(i, r[1], r[2], r[3], r[4], r[5], now, r[6]) for i, r in zip(ids, rows, strict=True)],
    )
    b.conn.executemany("DELETE FROM sets WHERE rowid = ?", [(r[0],) for r in rows])
    b.conn.executemany(
        "INSERT OR IGNORE INTO queues (name) VALUES (?)", [(q,) for q in {r[1] for r in rows}]
    )
    return [(i, r[1], r[2]) for i, r in zip(ids, rows, strict=True)]


_MOVABLE = "SELECT rowid, queue, priority, jid, jobtype, reserve_for, body FROM sets"


def move_due(b: Batch, name: str, now: float, limit: int) -> Moved:
    """Move up to ``limit`` due entries into their queues."""
    rows = b.conn.execute(
        f"{_MOVABLE} WHERE name = ? AND score <= ? ORDER BY score, jid LIMIT ?",
        (name, now, limit),
    ).fetchall()
    return _to_queues(b, rows, now)


def requeue(b: Batch, name: str, jids: Sequence[str] | None, now: float) -> Moved:
    """Move the listed entries (all for ``None``) into their queues."""
    if jids is None:
        sql = f"{_MOVABLE} WHERE name = ? ORDER BY score, jid"
        rows = b.conn.execute(sql, (name,)).fetchall()
    else:
        # ``+score``: look the jids up by the key and sort them, rather than read the whole
        # set in score order for them (200 ms per 500 jids of a 200,000-job set).
        rows = []
        for part in chunks(list(dict.fromkeys(jids))):
            sql = f"{_MOVABLE} WHERE name = ? AND jid IN ({_marks(len(part))}) ORDER BY +score"
            rows += b.conn.execute(sql, (name, *part)).fetchall()
    return _to_queues(b, rows, now)


def remove_before(b: Batch, name: str, now: float, limit: int) -> int:
    """Delete up to ``limit`` entries with ``score <= now``."""
    cur = b.conn.execute(
        "DELETE FROM sets WHERE rowid IN (SELECT rowid FROM sets WHERE name = ?"
        " AND score <= ? ORDER BY score, jid LIMIT ?)",
        (name, now, limit),
    )
    return cur.rowcount


def set_remove(b: Batch, name: str, jids: Sequence[str]) -> list[str]:
    """Delete the listed entries; return the jids deleted, in the listed order."""
    wanted = list(dict.fromkeys(jids))
    removed: set[str] = set()
    for part in chunks(wanted):
        sql = f"DELETE FROM sets WHERE name = ? AND jid IN ({_marks(len(part))}) RETURNING jid"
        removed.update(row[0] for row in b.conn.execute(sql, (name, *part)).fetchall())
    return [jid for jid in wanted if jid in removed]


def set_move(
    b: Batch, name: str, jids: Sequence[str], to: str, score: float
) -> tuple[list[str], int]:
    """Move entries to another set; return ``(the jids moved, in the listed order, how
    many are new in the target)``."""
    moved: list[str] = []
    added = 0
    for jid in dict.fromkeys(jids):
        row = b.conn.execute(
            f"SELECT rowid, {SET_COLUMNS} FROM sets WHERE name = ? AND jid = ?", (name, jid)
        ).fetchone()
        if row is None:
            continue
        b.conn.execute("DELETE FROM sets WHERE rowid = ?", (row[0],))
        added += put_set(b.conn, to, score, scored(row[1:]).entry)
        moved.append(jid)
    return moved, added


# -- reads ------------------------------------------------------------------------------


def scored(row: Sequence[Any]) -> Scored:
    """Build a :class:`Scored` from a row of ``SET_COLUMNS``."""
    score, jid, queue, jobtype, priority, reserve_for, body = row
    return Scored(score, Entry(jid, queue, jobtype, priority, reserve_for, bytes(body)))


def _where(name: str, where: SetFilter | None) -> tuple[str, list[Any]]:
    sql, params = "name = ?", list[Any]([name])
    if where is not None:
        if where.queue is not None:
            sql, params = sql + " AND queue = ?", [*params, where.queue]
        if where.jobtype is not None:
            sql, params = sql + " AND jobtype = ?", [*params, where.jobtype]
        if where.text:
            sql, params = sql + " AND instr(body, ?) > 0", [*params, where.text.encode()]
    return sql, params


def set_page(
    conn: sqlite3.Connection,
    name: str,
    offset: int,
    limit: int,
    reverse: bool,
    where: SetFilter | None,
) -> list[Scored]:
    """Return a page of a set ordered by score (then jid)."""
    cond, params = _where(name, where)
    order = "score DESC, jid DESC" if reverse else "score, jid"
    sql = f"SELECT {SET_COLUMNS} FROM sets WHERE {cond} ORDER BY {order} LIMIT ? OFFSET ?"
    return [scored(r) for r in conn.execute(sql, (*params, limit, offset)).fetchall()]


def set_count(conn: sqlite3.Connection, name: str, where: SetFilter | None) -> int:
    """Count the entries of a set that match ``where``."""
    cond, params = _where(name, where)
    return int(conn.execute(f"SELECT count(*) FROM sets WHERE {cond}", params).fetchone()[0])


def set_match(conn: sqlite3.Connection, name: str, pattern: str | None) -> list[Scored]:
    """Return the entries whose body matches a Redis-style glob (all for ``None``)."""
    if pattern is None:
        return set_page(conn, name, 0, -1, False, None)
    sql = f"SELECT {SET_COLUMNS} FROM sets WHERE name = ? AND werk_match(?, body)"
    sql += " ORDER BY score, jid"
    return [scored(r) for r in conn.execute(sql, (name, pattern)).fetchall()]


def set_get(conn: sqlite3.Connection, name: str, jid: str) -> Scored | None:
    """Return one entry of a set."""
    sql = f"SELECT {SET_COLUMNS} FROM sets WHERE name = ? AND jid = ?"
    row = conn.execute(sql, (name, jid)).fetchone()
    return None if row is None else scored(row)


def next_due(conn: sqlite3.Connection, name: str) -> float | None:
    """Return the lowest score of a set."""
    row = conn.execute("SELECT min(score) FROM sets WHERE name = ?", (name,)).fetchone()
    return None if row[0] is None else float(row[0])


def queued(conn: sqlite3.Connection, job_ids: Sequence[int]) -> list[Queued]:
    """Return the jobs with these ids in that order (ids gone since are skipped)."""
    found: dict[int, Queued] = {}
    for start in range(0, len(job_ids), CHUNK):
        part = job_ids[start : start + CHUNK]
        sql = (
            "SELECT id, jid, queue, jobtype, priority, reserve_for, body, enqueued_at"
            f" FROM jobs WHERE id IN ({_marks(len(part))})"
        )
        for row in conn.execute(sql, part).fetchall():
            entry = Entry(row[1], row[2], row[3], row[4], row[5], bytes(row[6]))
            found[row[0]] = Queued(entry, row[7])
    return [found[i] for i in job_ids if i in found]


def find_jobs(conn: sqlite3.Connection, queue: str, jids: Sequence[str]) -> dict[int, str]:
    """Return the row ids of the jobs of ``queue`` with these jids, each with its jid (a
    table scan per chunk of jids)."""
    ids: dict[int, str] = {}
    for part in chunks(list(dict.fromkeys(jids))):
        sql = f"SELECT id, jid FROM jobs WHERE queue = ? AND jid IN ({_marks(len(part))})"
        ids.update((row[0], row[1]) for row in conn.execute(sql, (queue, *part)).fetchall())
    return ids


def oldest(conn: sqlite3.Connection, job_ids: Sequence[int]) -> float | None:
    """Return the lowest ``enqueued_at`` among a few jobs."""
    sql = f"SELECT min(enqueued_at) FROM jobs WHERE id IN ({_marks(len(job_ids))})"
    value = conn.execute(sql, job_ids).fetchone()[0]
    return None if value is None else float(value)


def glob_match(pattern: str, body: bytes) -> bool:
    """Whether ``body`` matches the Redis glob ``pattern`` (the ``werk_match`` SQL function)."""
    return glob(pattern).match(bytes(body))
