"""PostgreSQL for the tests: one scratch database per test session, one schema per test.

The database (``werktest_<random>``) is created on first use at 127.0.0.1:5432 (user
``postgres``, trust auth) and dropped when the session ends (``tests/conftest.py``); each
test's store lives in a schema of its own, dropped after the test. Creating a schema is
far cheaper than creating a database, so the server suites stay fast on PostgreSQL.
"""

from __future__ import annotations

from uuid import uuid4

import psycopg

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
_database: list[str] = []


def pg_available() -> bool:
    """Return True when PostgreSQL answers at 127.0.0.1:5432."""
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def pg_url() -> str:
    """Return the URL of this session's scratch database, creating it on first use."""
    if not _database:
        name = f"werktest_{uuid4().hex[:16]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        _database.append(name)
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + _database[0]


def new_schema() -> str:
    """Return a fresh schema name (the store creates it on open)."""
    return f"werktest_{uuid4().hex[:16]}"


def schema_url(schema: str) -> str:
    """Return the ``--storage`` URL of a schema in the session's database."""
    return f"{pg_url()}?schema={schema}"


def drop_schema(schema: str) -> None:
    """Drop a test's schema with everything in it."""
    with psycopg.connect(pg_url(), autocommit=True) as conn:
        conn.execute("SET lock_timeout = '20s'")  # a leaked transaction fails, not hangs
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def drop_session_database() -> None:
    """Drop the session's scratch database, if one was made (closing its connections)."""
    while _database:
        name = _database.pop()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
