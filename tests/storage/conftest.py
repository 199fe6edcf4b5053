"""Fixtures that run the storage contract against every backend (the huey StorageTests idea).

``store`` is an open store on a fresh SQLite directory (in each durability mode), a fresh
Redis key prefix or a fresh PostgreSQL schema (in the session's scratch database, see
``tests/pg.py``);
``reopen`` closes it and opens a new store on the *same* data, to check what survives a
restart. Redis must be at 127.0.0.1:6379 (DB 1) and PostgreSQL at 127.0.0.1:5432: the tests
skip when one is missing, except in CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from tests import pg
from werk.storage.base import Store
from werk.storage.sqlite import SqliteStore

BACKENDS = ["sqlite", "sqlite-os", "redis", "postgres"]
"""``sqlite-os`` is the embedded store in ``--durability os`` mode, where the event loop
commits small batches itself: the whole contract must hold there too."""
REDIS_URL = "redis://127.0.0.1:6379/1"
Reopen = Callable[[], Awaitable[Store]]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


class Backend:
    """Builds stores of one backend on one piece of data (a directory or a key prefix)."""

    def __init__(self, name: str, tmp_path: Path) -> None:
        self.name = name
        self.directory = tmp_path / "data"
        self.prefix = f"werktest:{uuid4().hex}:"
        self.schema = pg.new_schema()
        self.opened: list[Store] = []

    @property
    def url(self) -> str:
        """The ``--storage`` URL of this backend's data (Redis and PostgreSQL)."""
        if self.name == "postgres":
            return pg.schema_url(self.schema)
        return f"{REDIS_URL}?prefix={self.prefix}"

    def build(self) -> Store:
        """Return an unopened store on this backend's data."""
        if self.name.startswith("sqlite"):
            return SqliteStore(
                self.directory, durability="os" if self.name == "sqlite-os" else "fsync"
            )
        if self.name == "postgres":
            from werk.storage.postgres import PostgresStore

            return PostgresStore.from_url(self.url)
        from werk.storage.redis import RedisStore

        return RedisStore.from_url(self.url)

    async def open(self) -> Store:
        """Return an opened store on this backend's data (closed at teardown)."""
        store = self.build()
        await store.open()
        self.opened.append(store)
        return store

    async def cleanup(self) -> None:
        """Close every store and delete its data (Redis keys, PostgreSQL schema)."""
        for store in self.opened:
            await store.close()
        if self.name == "redis":
            await _delete_prefix(self.prefix)
        if self.name == "postgres":
            pg.drop_schema(self.schema)


async def _redis_ready() -> str | None:
    """Return why Redis cannot be used, or ``None`` when it can."""
    try:
        import werk.storage.redis.store  # noqa: F401
    except ImportError as exc:
        return f"werk.storage.redis.store is not importable: {exc}"
    import redis.asyncio as aioredis

    client: Any = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await client.ping()
    except Exception as exc:  # any failure to reach Redis means: not available
        return f"Redis at {REDIS_URL} is unreachable: {exc}"
    finally:
        await client.aclose()
    return None


async def _delete_prefix(prefix: str) -> None:
    import redis.asyncio as aioredis

    client: Any = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
    finally:
        await client.aclose()


@asynccontextmanager
async def backend_data(name: str, tmp_path: Path) -> AsyncIterator[Backend]:
    """One backend's data (Redis checked first: skip locally, fail in CI), cleaned up
    when the block ends."""
    if name == "redis":
        reason = await _redis_ready()
        if reason is not None:
            _unavailable(reason)
    if name == "postgres" and not pg.pg_available():
        _unavailable(f"PostgreSQL at {pg.PG_ADMIN} is unreachable")
    data = Backend(name, tmp_path)
    try:
        yield data
    finally:
        await data.cleanup()


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """One backend's data, cleaned up after the test."""
    async with backend_data(request.param, tmp_path) as data:
        yield data


@pytest.fixture
async def store(backend: Backend) -> Store:
    """An open store on a fresh backend."""
    return await backend.open()


@pytest.fixture
def reopen(backend: Backend, store: Store) -> Reopen:
    """Return a coroutine function: close every open store, open a new one on the same data."""

    async def again() -> Store:
        for opened in backend.opened:
            await opened.close()
        backend.opened.clear()
        return await backend.open()

    return again
