"""The PostgreSQL store's schema: its tables, its functions, and named migrations.

Everything lives in one schema of its own (``werk`` unless the URL says ``?schema=``).
Migrations are applied on open, each recorded in ``migrations`` in the same transaction,
under a transaction-level advisory lock so that servers starting together never race.

Tables (docs/storage-postgres.md explains the choices):

- ``jobs(id, queue, priority, jid, jobtype, reserve_for, enqueued_at, body)``: queued jobs;
  ``id`` (an identity) is the FIFO order, fetched by ``(queue, priority DESC, id)``.
- ``working(jid, ... , wid, reserved_at, expires_at)``: reservations, the job copied in.
- ``sets(name, jid, score, queue, jobtype, priority, reserve_for, body)``: the scheduled,
  retries and dead sets, unique by ``(name, jid)``, indexed by ``(name, score, jid)``.
- ``queues(name, paused)``; ``counters(key, shard, processed, failures)`` (``key`` is
  ``total`` or a UTC day; ACKs spread over ``SHARDS`` rows so they never queue on one row
  lock); ``processes(wid, record)``; ``migrations(name, applied_at)``.
- ``locks``, ``records``, ``counts``, ``limiters``, ``limit_units``: as the SQLite store's
  (:mod:`werk.storage.postgres.coord`); keys sort bytewise (``COLLATE "C"``).
- ``intake(id, job, pushed_at, error)``: jobs pushed by applications with ``push(json)``
  inside their own transactions (:mod:`werk.storage.postgres.pushsql`).

Functions: ``fetch(queues, now, wid)`` takes the next job of the first non-empty unpaused
queue with ``FOR UPDATE SKIP LOCKED`` and reserves it, in one statement, committing with
``synchronous_commit = off`` (as ACK and FAIL do: a lost FETCH or ACK delivers again);
``push(json)`` is the transactional enqueue (:mod:`werk.storage.postgres.pushsql`).
"""

from __future__ import annotations

import re
import time
from typing import Final

import psycopg
from psycopg.rows import TupleRow

from werk.errors import StorageError
from werk.storage.postgres.pushsql import PUSH_FUNCTIONS

DEFAULT_SCHEMA: Final = "werk"
SCHEMA_NAME: Final = re.compile(r"\A[a-z_][a-z0-9_]{0,39}\Z")
SHARDS: Final = 16
"""Rows per counter key: concurrent ACKs update different rows."""

_JOB_COLUMNS = (
    "queue text NOT NULL, priority smallint NOT NULL, jid text NOT NULL,"
    " jobtype text NOT NULL, reserve_for integer NOT NULL"
)

FETCH_FUNCTION = """
CREATE OR REPLACE FUNCTION {s}.fetch(qs text[], at_time double precision, worker text)
RETURNS TABLE (r_jid text, r_queue text, r_jobtype text, r_priority smallint,
               r_reserve_for integer, r_enqueued_at double precision, r_body bytea,
               r_expires_at double precision)
LANGUAGE plpgsql AS $$
DECLARE
  q text;
  picked bigint;
BEGIN
  -- A FETCH may be answered before its commit is on disk (docs/storage.md): lost in a
  -- crash, the job is still queued and is handed out again.
  PERFORM set_config('synchronous_commit', 'off', true);
  FOREACH q IN ARRAY qs LOOP
    CONTINUE WHEN EXISTS (SELECT 1 FROM {s}.queues p WHERE p.name = q AND p.paused);
    SELECT j.id INTO picked FROM {s}.jobs j WHERE j.queue = q
      ORDER BY j.priority DESC, j.id LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF FOUND THEN
      RETURN QUERY
        WITH taken AS (DELETE FROM {s}.jobs j WHERE j.id = picked RETURNING j.*)
        INSERT INTO {s}.working AS w (jid, queue, jobtype, priority, reserve_for,
                                      enqueued_at, body, wid, reserved_at, expires_at)
        SELECT t.jid, t.queue, t.jobtype, t.priority, t.reserve_for, t.enqueued_at,
               t.body, worker, at_time, at_time + t.reserve_for FROM taken t
        ON CONFLICT (jid) DO UPDATE SET queue = excluded.queue, jobtype = excluded.jobtype,
          priority = excluded.priority, reserve_for = excluded.reserve_for,
          enqueued_at = excluded.enqueued_at, body = excluded.body, wid = excluded.wid,
          reserved_at = excluded.reserved_at, expires_at = excluded.expires_at
        RETURNING w.jid, w.queue, w.jobtype, w.priority, w.reserve_for, w.enqueued_at,
                  w.body, w.expires_at;
      RETURN;
    END IF;
  END LOOP;
END
$$
"""

MIGRATIONS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    (
        "0001_initial",
        (
            'CREATE TABLE {s}.queues (name text COLLATE "C" PRIMARY KEY,'
            " paused boolean NOT NULL DEFAULT false)",
            "CREATE TABLE {s}.jobs (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            f" {_JOB_COLUMNS}, enqueued_at double precision NOT NULL, body bytea NOT NULL)",
            "CREATE INDEX jobs_fetch ON {s}.jobs (queue, priority DESC, id)",
            "CREATE INDEX jobs_jid ON {s}.jobs (queue, jid)",
            "CREATE TABLE {s}.working (jid text PRIMARY KEY, queue text NOT NULL,"
            " jobtype text NOT NULL, priority smallint NOT NULL, reserve_for integer NOT NULL,"
            " enqueued_at double precision NOT NULL, body bytea NOT NULL, wid text NOT NULL,"
            " reserved_at double precision NOT NULL, expires_at double precision NOT NULL)",
            "CREATE INDEX working_by_expiry ON {s}.working (expires_at, jid)",
            "CREATE TABLE {s}.sets (name text NOT NULL, jid text NOT NULL,"
            f" score double precision NOT NULL, {_JOB_COLUMNS.replace('jid text NOT NULL, ', '')},"
            " body bytea NOT NULL, PRIMARY KEY (name, jid))",
            "CREATE INDEX sets_by_score ON {s}.sets (name, score, jid)",
            "CREATE TABLE {s}.counters (key text NOT NULL, shard smallint NOT NULL,"
            " processed bigint NOT NULL, failures bigint NOT NULL, PRIMARY KEY (key, shard))",
            "CREATE TABLE {s}.processes (wid text PRIMARY KEY, record text NOT NULL)",
            'CREATE TABLE {s}.locks (key text COLLATE "C" PRIMARY KEY, owner text NOT NULL,'
            " expires_at double precision NOT NULL)",
            "CREATE INDEX locks_by_expiry ON {s}.locks (expires_at)",
            'CREATE TABLE {s}.records (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL,'
            " expires_at double precision)",
            "CREATE INDEX records_by_expiry ON {s}.records (expires_at)"
            " WHERE expires_at IS NOT NULL",
            'CREATE TABLE {s}.counts (key text COLLATE "C" NOT NULL, name text COLLATE "C"'
            " NOT NULL, value bigint NOT NULL, PRIMARY KEY (key, name))",
            "CREATE TABLE {s}.limiters (name text PRIMARY KEY, kind text NOT NULL,"
            " lim integer NOT NULL, period double precision NOT NULL,"
            " start double precision NOT NULL, level double precision NOT NULL,"
            " seq bigint NOT NULL)",
            "CREATE TABLE {s}.limit_units (name text NOT NULL, unit text NOT NULL,"
            " score double precision NOT NULL, PRIMARY KEY (name, unit))",
            "CREATE INDEX limit_units_by_score ON {s}.limit_units (name, score)",
            "CREATE TABLE {s}.intake (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " job text NOT NULL, pushed_at double precision NOT NULL, error text)",
            "CREATE INDEX intake_pending ON {s}.intake (id) WHERE error IS NULL",
            FETCH_FUNCTION,
            *PUSH_FUNCTIONS,
        ),
    ),
    ("0002_fetch_commits_asynchronously", (FETCH_FUNCTION,)),
    ("0003_push_checks_field_types", PUSH_FUNCTIONS),
    ("0004_push_folds_key_case", PUSH_FUNCTIONS),
    ("0005_push_refuses_at_outside_the_years", PUSH_FUNCTIONS),
)


def check_schema_name(name: str) -> str:
    """Return ``name`` if it is a plain lower-case identifier of at most 40 characters.

    Raises:
        StorageError: it is not (quoting rules and channel names stay simple this way).
    """
    if not SCHEMA_NAME.match(name):
        raise StorageError(
            f"postgres: schema name {name!r} must match {SCHEMA_NAME.pattern} (lower case)"
        )
    return name


async def migrate(conn: psycopg.AsyncConnection[TupleRow], schema: str) -> list[str]:
    """Create the schema and apply every pending migration; return the names applied.

    Runs in one transaction holding ``pg_advisory_xact_lock`` on the schema's name, so a
    second server starting at the same moment waits, then finds nothing left to do.

    Raises:
        StorageError: the schema holds migrations this version of Werk does not know.
    """
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"werk:{schema}",))
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {schema}.migrations"
            " (name text PRIMARY KEY, applied_at double precision NOT NULL)"
        )
        cur = await conn.execute(f"SELECT name FROM {schema}.migrations")
        done = {str(row[0]) for row in await cur.fetchall()}
        known = {name for name, _ in MIGRATIONS}
        if done - known:
            raise StorageError(
                f"postgres: schema {schema} has migrations this Werk does not know:"
                f" {sorted(done - known)}"
            )
        for name, statements in MIGRATIONS:
            if name in done:
                continue
            # One round trip: no parameters, so several statements may travel together.
            script = ";\n".join(statements).replace("{s}", schema)
            await conn.execute(script.encode())
            await conn.execute(
                f"INSERT INTO {schema}.migrations (name, applied_at) VALUES (%s, %s)",
                (name, time.time()),
            )
            applied.append(name)
    return applied
