"""The PostgreSQL store's URL (``postgresql://`` or ``postgres://``) and its options.

Werk's own options (``schema``, ``pool``) and libpq's connection parameters, checked here
before the store opens (:mod:`werk.storage.urls`): a name libpq does not know is refused
with the names Werk knows, and the parameters whose values libpq reads as numbers or
keywords are checked for them; the rest (paths, names) pass to libpq as written. Last,
libpq itself parses what is left (:func:`psycopg.conninfo.conninfo_to_dict`, no
connection), so a URL it would refuse is refused here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict

from werk.ports import parse_port
from werk.storage.postgres.schema import DEFAULT_SCHEMA, SCHEMA_NAME
from werk.storage.urls import Check, StorageURLError, choice, parse_options, text, whole


def schema(value: str) -> str:
    """The schema holding Werk's tables: a plain lower-case identifier (``pg_`` is
    PostgreSQL's own)."""
    if not SCHEMA_NAME.match(value) or value.startswith("pg_"):
        raise ValueError(
            "must be a lower-case identifier of 1 to 40 letters, digits and _"
            " ([a-z_][a-z0-9_]*), not starting with pg_"
        )
    return value


def ordinary(value: str) -> str:
    """``replication``: Werk needs an ordinary connection."""
    raise ValueError("Werk needs an ordinary connection, not a replication one")


WERK: dict[str, Check] = {"schema": schema, "pool": whole(1, 1000)}
"""Werk's own options, removed before the URL goes to libpq."""
LIBPQ_MORE = ", or a libpq parameter such as sslmode, connect_timeout, application_name"

ON_OFF = choice("0", "1")
TLS_VERSIONS = choice("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
LIBPQ_TYPED: dict[str, Check] = {
    "connect_timeout": whole(0),
    "keepalives": ON_OFF,
    "keepalives_idle": whole(0),
    "keepalives_interval": whole(0),
    "keepalives_count": whole(0),
    "tcp_user_timeout": whole(0),
    "sslmode": choice("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    "gssencmode": choice("disable", "prefer", "require"),
    "channel_binding": choice("disable", "prefer", "require"),
    "target_session_attrs": choice(
        "any", "read-write", "read-only", "primary", "standby", "prefer-standby"
    ),
    "load_balance_hosts": choice("disable", "random"),
    "sslcompression": ON_OFF,
    "sslsni": ON_OFF,
    "gssdelegation": ON_OFF,
    "sslnegotiation": choice("postgres", "direct"),
    "sslcertmode": choice("disable", "allow", "require"),
    "ssl_min_protocol_version": TLS_VERSIONS,
    "ssl_max_protocol_version": TLS_VERSIONS,
    "replication": ordinary,
}
"""libpq parameters whose values libpq reads as numbers or keywords (its documentation's
"Parameter Key Words"); a wrong one would only fail at the first connection."""


def options() -> dict[str, Check]:
    """Every option a URL may carry: Werk's, then the linked libpq's parameters."""
    known = {option.keyword.decode() for option in pq.Conninfo.get_defaults()}
    return {**WERK, **{name: LIBPQ_TYPED.get(name, text) for name in sorted(known)}}


@dataclass(frozen=True, slots=True)
class PostgresURL:
    """A checked PostgreSQL URL: the conninfo for libpq, the schema and the pool size."""

    conninfo: str
    schema: str = DEFAULT_SCHEMA
    pool: int = 10


def parse_url(url: str) -> PostgresURL:
    """Check a PostgreSQL URL and split off Werk's options.

    Raises:
        StorageURLError: an option is unknown or bad, or libpq cannot parse the URL.
    """
    base, _, query = url.partition("?")
    query = query.replace("+", "%2B")  # libpq reads + as a plus sign, not a space
    if base.lower().startswith("postgres://"):
        base = "postgresql://" + base[len("postgres://") :]
    allowed = options()
    values = parse_options("postgres", query, allowed, WERK, LIBPQ_MORE)
    rest = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in WERK]
    # Re-encoded with %20 for a space (urlencode's default + would reach libpq as a plus).
    conninfo = f"{base}?{urlencode(rest, quote_via=quote)}" if rest else base
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())  # libpq's messages may end with a newline
        raise StorageURLError(f"postgres: bad URL: {reason}") from exc
    # libpq takes any text as the port (several hosts: a comma-separated list) and fails
    # only when it connects; Werk's one rule for ports refuses it here.
    for port in str(params.get("port") or "").split(","):
        if port:
            try:
                parse_port(port)
            except ValueError as exc:
                raise StorageURLError(f"postgres: bad URL: {exc}") from exc
    return PostgresURL(conninfo, values.get("schema", DEFAULT_SCHEMA), values.get("pool", 10))
