"""Transactional enqueue: push a job on your own PostgreSQL connection, in your transaction.

When Werk runs on PostgreSQL (``werk server --storage postgresql://...``), an application
that shares that database can push a job in the same transaction as the rows it is about:
the job exists for Werk if and only if the transaction commits (a Werk extension; Faktory
has no such thing)::

    with psycopg.connect(dsn) as conn, conn.transaction():
        conn.execute("INSERT INTO orders (id) VALUES (%s)", (order_id,))
        werk.client.postgres.push(conn, Job("SendReceipt", [order_id]))

:func:`push` takes a psycopg 3 ``Connection`` or ``Cursor``, a psycopg2 connection,
Django's ``django.db.connection``, or a SQLAlchemy ``Connection`` or ``Session``;
:func:`push_async` takes a psycopg 3 ``AsyncConnection`` or a SQLAlchemy
``AsyncConnection``/``AsyncSession``. Both call the SQL function ``<schema>.push(json)``
(docs/storage-postgres.md), which any language can call the same way. Nothing here
imports a driver: the connection you pass brings its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from werk.client.job import Job, job_dict
from werk.errors import CommandError

INVALID_JOB = "22023"
"""The SQLSTATE (``invalid_parameter_value``) of a job the SQL function refuses."""


def _statement(schema: str, named: bool) -> str:
    if not schema.isidentifier():
        raise ValueError(f"not a schema name: {schema!r}")
    return f"SELECT {schema}.push(CAST({':job' if named else '%s'} AS json))"


def _payload(job: Job | Mapping[str, Any]) -> tuple[str, str]:
    payload = job_dict(job)
    return payload["jid"], json.dumps(payload, separators=(",", ":"))


def _refusal(exc: BaseException) -> CommandError | None:
    """Return PUSH's error for a driver error raised by a refused job, else ``None``."""
    seen: BaseException | None = exc
    for _ in range(4):  # SQLAlchemy keeps the driver's error in .orig, Django in __cause__
        if seen is None:
            return None
        code = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if code == INVALID_JOB:
            diag = getattr(seen, "diag", None)
            message = getattr(diag, "message_primary", None) or str(seen).splitlines()[0]
            return CommandError(str(message))
        seen = getattr(seen, "orig", None) or seen.__cause__
    return None


@contextmanager
def _refused_as_command_error() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        refused = _refusal(exc)
        if refused is None:
            raise
        raise refused from exc


def _is_sqlalchemy(conn: object) -> bool:
    return type(conn).__module__.startswith("sqlalchemy")


def push(conn: Any, job: Job | Mapping[str, Any], *, schema: str = "werk") -> str:
    """Push ``job`` inside the transaction open on ``conn``; return its jid.

    The job is checked as PUSH checks it (same rules, same messages); it becomes
    fetchable once the transaction commits, and a rollback leaves no trace.

    Args:
        conn: a psycopg 3 connection or cursor, a psycopg2 or Django connection (anything
            with DB-API ``cursor()``), or a SQLAlchemy ``Connection``/``Session``.
        job: a :class:`~werk.client.Job` or a job mapping (``jid`` made when missing).
        schema: Werk's schema in that database (the server's ``?schema=``).

    Raises:
        CommandError: the job breaks a PUSH rule; the transaction is aborted (as after
            any failed statement) and must be rolled back.
    """
    jid, data = _payload(job)
    with _refused_as_command_error():
        if _is_sqlalchemy(conn):
            from sqlalchemy import text

            conn.execute(text(_statement(schema, named=True)), {"job": data})
        elif hasattr(conn, "cursor"):
            with conn.cursor() as cur:
                cur.execute(_statement(schema, named=False), (data,))
        else:  # a cursor
            conn.execute(_statement(schema, named=False), (data,))
    return jid


async def push_async(conn: Any, job: Job | Mapping[str, Any], *, schema: str = "werk") -> str:
    """Like :func:`push`, for a psycopg 3 ``AsyncConnection`` or a SQLAlchemy
    ``AsyncConnection``/``AsyncSession``; return the jid.

    Raises:
        CommandError: the job breaks a PUSH rule (the transaction is aborted).
    """
    jid, data = _payload(job)
    with _refused_as_command_error():
        if _is_sqlalchemy(conn):
            from sqlalchemy import text

            await conn.execute(text(_statement(schema, named=True)), {"job": data})
        else:
            await conn.execute(_statement(schema, named=False), (data,))
    return jid


__all__ = ["push", "push_async"]
