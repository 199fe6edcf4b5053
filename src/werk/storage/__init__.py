"""Storage: the :class:`~werk.storage.base.Store` contract and its backends.

:func:`open_store` picks the backend from a URL: ``redis://`` / ``rediss://`` / ``unix://``
for Redis, ``postgresql://`` / ``postgres://`` for PostgreSQL, anything else (a path, or
``sqlite:///path``) for the embedded SQLite store.
"""

from __future__ import annotations

from werk.storage.base import Store


def open_store(url: str, durability: str = "fsync") -> Store:
    """Return an unopened store for ``url``; call ``await store.open()`` next.

    Redis URLs may carry ``?prefix=...`` to put every key under that prefix; PostgreSQL
    URLs ``?schema=...`` (default ``werk``) and ``?pool=...`` (connections, default 10).
    ``durability`` (``fsync`` or ``os``) is the embedded store's commit mode; Redis keeps
    its own (``appendfsync``), PostgreSQL its ``synchronous_commit``.
    """
    if url.startswith(("postgresql://", "postgres://")):
        from werk.storage.postgres import PostgresStore

        return PostgresStore.from_url(url)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from werk.storage.redis import RedisStore

        return RedisStore.from_url(url)
    from pathlib import Path

    from werk.storage.sqlite import SqliteStore

    return SqliteStore(Path(url.removeprefix("sqlite://")).expanduser(), durability=durability)


__all__ = ["Store", "open_store"]
