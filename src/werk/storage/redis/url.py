"""The Redis store's URL: ``redis://``, ``rediss://`` (TLS) or ``unix://``, and its options.

Every query option is checked here before the store opens (:mod:`werk.storage.urls`):
Werk's own ``prefix`` and the redis-py connection options Werk lets through, each with its
type. The options reach redis-py as typed keyword arguments, never as URL text, so a typo
cannot become a keyword argument that fails at the first connection, nor ``off`` a true
boolean.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from werk.ports import netloc_port
from werk.storage.redis.keys import DEFAULT_PREFIX
from werk.storage.urls import (
    Check,
    StorageURLError,
    boolean,
    choice,
    parse_options,
    seconds,
    text,
    token,
    whole,
)

PREFIX = re.compile(r"[A-Za-z0-9_.:{}@#/+=-]{1,100}\Z")
"""A key prefix: no spaces, quotes or glob characters (``*?[]\\``), so that every key can
be typed in ``redis-cli`` and matched with ``SCAN MATCH <prefix>*``; ``{...}`` makes a
Redis Cluster hash tag."""


def prefix(value: str) -> str:
    """Werk's key prefix (see :data:`PREFIX`)."""
    if not PREFIX.match(value):
        raise ValueError(
            "1 to 100 letters, digits or _ . : { } @ # / + = -"
            " (no spaces, quotes or glob characters)"
        )
    return value


COMMON: dict[str, Check] = {
    "prefix": prefix,
    "db": whole(0),
    "socket_timeout": seconds,
    "socket_connect_timeout": seconds,
    "health_check_interval": whole(0),
    "max_connections": whole(2),  # one of them is kept for the batch script
    "client_name": token,
}
TCP: dict[str, Check] = {"socket_keepalive": boolean}
TLS: dict[str, Check] = {
    "ssl_cert_reqs": choice("none", "optional", "required"),
    "ssl_check_hostname": boolean,
    "ssl_ca_certs": text,
    "ssl_certfile": text,
    "ssl_keyfile": text,
}
OPTIONS: dict[str, dict[str, Check]] = {
    "redis": {**COMMON, **TCP},
    "rediss": {**COMMON, **TCP, **TLS},
    "unix": COMMON,
}
"""The query options each scheme accepts."""


@dataclass(frozen=True, slots=True)
class RedisURL:
    """A checked Redis URL: what redis-py connects to, the key prefix, typed options."""

    client_url: str
    prefix: str = DEFAULT_PREFIX
    options: dict[str, Any] = field(default_factory=dict)


def parse_url(url: str) -> RedisURL:
    """Check a Redis URL and split it into the URL for redis-py, the prefix and the options.

    Raises:
        StorageURLError: an option is unknown or bad, or the port, the database number or
            the socket path is.
    """
    base, _, query = url.partition("?")
    try:
        parts = urlsplit(base)
        netloc_port(parts.netloc)  # Werk's one rule for ports: 1-65535
    except ValueError as exc:
        raise StorageURLError(f"redis: malformed URL: {exc}") from exc
    scheme = parts.scheme.lower()
    options = parse_options("redis", query, OPTIONS[scheme])
    if scheme == "unix":
        if not parts.path:
            raise StorageURLError("redis: a unix:// URL needs the socket's path: unix:///path")
    elif parts.path.strip("/") and not parts.path.strip("/").isdigit():
        raise StorageURLError(
            f"redis: the database in the URL's path must be a number (redis://host:6379/0),"
            f" not {parts.path!r}"
        )
    elif parts.path.strip("/") and "db" in options:
        raise StorageURLError("redis: the database is given twice: in the URL's path and ?db=")
    return RedisURL(base, options.pop("prefix", DEFAULT_PREFIX), options)
