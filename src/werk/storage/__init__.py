"""Storage: the :class:`~werk.storage.base.Store` contract and its backends.

:func:`open_store` picks the backend from the URL's scheme through :data:`BACKENDS`
(``redis://`` / ``rediss://`` / ``unix://`` for Redis, ``postgresql://`` / ``postgres://``
for PostgreSQL, ``sqlite:///path`` for SQLite); a
plain path with no scheme is the embedded SQLite store. Any other scheme is refused,
naming it and the supported ones, never taken for a directory name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from werk.storage.base import Store
from werk.storage.urls import StorageURLError, parse_options


class UnsupportedStorageError(StorageURLError):
    """A storage URL names a scheme Werk has no backend for."""


def _redis(url: str, durability: str) -> Store:
    from werk.storage.redis import RedisStore

    return RedisStore.from_url(url)  # Redis keeps its own durability (appendfsync)


def _postgres(url: str, durability: str) -> Store:
    from werk.storage.postgres import PostgresStore

    return PostgresStore.from_url(url)  # PostgreSQL keeps its own (synchronous_commit)


def _sqlite(url: str, durability: str) -> Store:
    from werk.storage.sqlite import SqliteStore

    return SqliteStore(Path(url.removeprefix("sqlite://")).expanduser(), durability=durability)


def _check_redis(url: str) -> None:
    from werk.storage.redis.url import parse_url

    parse_url(url)


def _check_postgres(url: str) -> None:
    from werk.storage.postgres.url import parse_url

    parse_url(url)


def _check_sqlite(url: str) -> None:
    _, mark, query = url.partition("?")
    parse_options("sqlite", query, {})  # a sqlite:// URL takes no options
    if mark:
        raise StorageURLError("sqlite: a sqlite:// URL takes no options (nor a '?' in its path)")


BACKENDS: dict[str, Callable[[str, str], Store]] = {
    "redis": _redis,
    "rediss": _redis,
    "unix": _redis,
    "postgresql": _postgres,
    "postgres": _postgres,
    "sqlite": _sqlite,
}
"""URL scheme -> the function that builds its (unopened) store from the URL and the
durability mode (``fsync`` or ``os``). One line per scheme."""

URL_CHECKS: dict[str, Callable[[str], None]] = {
    "redis": _check_redis,
    "rediss": _check_redis,
    "unix": _check_redis,
    "postgresql": _check_postgres,
    "postgres": _check_postgres,
    "sqlite": _check_sqlite,
}
"""URL scheme -> the function that checks the URL's options (and whatever else of it the
backend reads) without opening anything; every scheme of :data:`BACKENDS` has one."""

_SCHEME = re.compile(r"\A([A-Za-z][A-Za-z0-9+.-]*):")


def scheme_of(url: str) -> str | None:
    """Return the URL's scheme in lower case, or ``None`` for a plain path."""
    found = _SCHEME.match(url)
    if found is None or not url[found.end() :].startswith("//"):
        return None  # a path such as ``data:dir`` or ``./x`` has no ``scheme://``
    return found.group(1).lower()


def check_url(url: str) -> None:
    """Refuse a storage URL whose scheme has no backend, or whose options (or other parts
    its backend reads: port, database) are unknown or bad, before any store opens.

    Raises:
        UnsupportedStorageError: naming the scheme and the supported ones.
        StorageURLError: naming the option and what is wrong with it (one line).
    """
    scheme = scheme_of(url)
    if scheme is None:
        return
    if scheme not in BACKENDS:
        supported = ", ".join(f"{name}://" for name in BACKENDS)
        # The URL itself is not quoted: it may hold a password.
        raise UnsupportedStorageError(
            f"unsupported storage URL scheme {scheme}://: use one of {supported}"
            " or a directory path"
        )
    URL_CHECKS[scheme](url)


def open_store(url: str, durability: str = "fsync") -> Store:
    """Return an unopened store for ``url``; call ``await store.open()`` next.

    Redis URLs may carry ``?prefix=...`` to put every key under that prefix; PostgreSQL
    URLs ``?schema=...`` (default ``werk``) and ``?pool=...`` (connections, default 10).
    ``durability`` (``fsync`` or ``os``) is the embedded store's commit mode; Redis keeps
    its own (``appendfsync``), PostgreSQL its ``synchronous_commit``.

    Raises:
        UnsupportedStorageError: the URL's scheme has no backend.
        StorageURLError: an option of the URL is unknown or bad.
    """
    check_url(url)
    scheme = scheme_of(url)
    build = _sqlite if scheme is None else BACKENDS[scheme]
    return build(url, durability)


__all__ = [
    "BACKENDS",
    "Store",
    "StorageURLError",
    "UnsupportedStorageError",
    "check_url",
    "open_store",
]
