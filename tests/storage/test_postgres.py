"""PostgreSQL-only behaviour: several stores (servers) on one schema, migrations, intake.

The shared contract is tested in ``test_contract.py``. The two-server cases written for
Redis (``test_redis.py``) run here unchanged: pytest resolves their ``stores`` fixture in
this module, where it opens :class:`PostgresStore` instances on one fresh schema of the
session's scratch database (``tests/pg.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import psycopg
import pytest

from tests import pg
from tests.conftest import require
from tests.storage.test_redis import (  # noqa: F401  (collected here, on PostgreSQL)
    entry,
    test_ack_on_another_server_and_shared_counters,
    test_concurrent_fetches_never_share_a_job,
    test_expire_against_extend_exactly_one_wins,
    test_move_due_on_both_servers_moves_each_entry_once,
    test_own_writes_wake_locally_and_once,
    test_paused_queue_is_skipped_by_every_server,
    test_priority_then_fifo_across_servers,
    test_processes_are_visible_from_every_server,
    test_push_on_one_server_wakes_a_waiter_on_another,
)
from werk.errors import StorageError
from werk.storage import open_store
from werk.storage.postgres import PostgresStore
from werk.storage.postgres.schema import MIGRATIONS
from werk.storage.postgres.url import PostgresURL, parse_url

StoreFactory = Callable[[], Awaitable[PostgresStore]]


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    """A fresh schema name in the session's database, dropped after the test."""
    require(pg.pg_available(), f"PostgreSQL at {pg.PG_ADMIN} is not reachable")
    name = pg.new_schema()
    yield name
    pg.drop_schema(name)


@pytest.fixture
async def stores(schema: str) -> AsyncIterator[StoreFactory]:
    """A factory of opened stores that all share one schema (one per server)."""
    opened: list[PostgresStore] = []

    async def factory() -> PostgresStore:
        store = PostgresStore.from_url(pg.schema_url(schema))
        await store.open()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()


def rows(schema: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(pg.pg_url()) as conn:
        return conn.execute(query.replace("{s}", schema)).fetchall()


async def test_servers_starting_together_apply_each_migration_once(schema: str) -> None:
    # Given four stores opening on an empty schema at the same moment
    stores = [PostgresStore.from_url(pg.schema_url(schema)) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        # Then the advisory lock let one create everything, and each migration is recorded once
        recorded = rows(schema, "SELECT name FROM {s}.migrations ORDER BY name")
        assert recorded == [(name,) for name, _ in MIGRATIONS]
        await stores[0].enqueue([entry("x")], 1.0)
        assert (await stores[3].queue_sizes()) == {"default": 1}
    finally:
        for store in stores:
            await store.close()


async def test_reopen_applies_nothing_and_keeps_jobs(stores: StoreFactory) -> None:
    a = await stores()
    await a.enqueue([entry("kept")], 1.0)
    await a.close()
    b = await stores()
    assert [q.entry.jid for q in await b.queue_page("default", 0, 10)] == ["kept"]


async def test_unknown_migration_refuses_to_start(stores: StoreFactory, schema: str) -> None:
    await stores()
    with psycopg.connect(pg.pg_url(), autocommit=True) as conn:
        conn.execute(f"INSERT INTO {schema}.migrations VALUES ('9999_future', 0)")
    store = PostgresStore.from_url(pg.schema_url(schema))
    with pytest.raises(StorageError, match="9999_future"):
        await store.open()
    await store.close()


async def test_flush_empties_every_table_but_processes(stores: StoreFactory, schema: str) -> None:
    a = await stores()
    await a.enqueue([entry("x"), entry("y")], 1.0)
    await a.fetch(["default"], 2.0, "w")
    await a.claim("lock", "o", 60, 1.0)
    await a.put_record("rec", b"v", None, 1.0)
    await a.add_counts("rec", {"n": 1})
    await a.limit_acquire("lim", "window", 1, 60, "h", 1.0)
    await a.flush()
    for table in ("jobs", "working", "sets", "queues", "counters", "intake", "locks"):
        assert rows(schema, f"SELECT count(*) FROM {{s}}.{table}") == [(0,)], table
    for table in ("records", "counts", "limiters", "limit_units"):
        assert rows(schema, f"SELECT count(*) FROM {{s}}.{table}") == [(0,)], table


def test_url_schema_and_pool_are_split_off() -> None:
    assert parse_url("postgresql://u@h/db?schema=w2&pool=3&sslmode=require") == PostgresURL(
        "postgresql://u@h/db?sslmode=require", "w2", 3
    )
    assert parse_url("postgresql://h/db") == PostgresURL("postgresql://h/db", "werk", 10)
    store = open_store("postgres://h/db?schema=other")
    assert isinstance(store, PostgresStore) and store.schema == "other"
    with pytest.raises(StorageError, match="bad URL option schema='Bad-Name'"):
        parse_url("postgresql://h/db?schema=Bad-Name")
    # libpq reads + as a plus sign and %20 as a space: both reach it as they were meant
    assert parse_url("postgresql://h/db?options=-c%20x%3Dy&application_name=a+b").conninfo == (
        "postgresql://h/db?options=-c%20x%3Dy&application_name=a%2Bb"
    )


async def test_unreachable_postgres_raises_storage_error() -> None:
    store = PostgresStore.from_url("postgresql://postgres@127.0.0.1:1/none?connect_timeout=1")
    store_open = store.open()
    with pytest.raises(StorageError):
        await asyncio.wait_for(store_open, 30)
    await store.close()
