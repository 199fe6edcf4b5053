"""Storage URL options, by kind: any URL either opens or is refused with one clear line.

Every backend's URL (``redis://``, ``unix://``, ``postgresql://``, ``sqlite://``) is built
from option names and values that hypothesis draws: Werk's own, the client library's, near
misses and any text. :func:`werk.storage.check_url` must refuse it with a one-line
:class:`StorageURLError` naming the option, or pass it; a URL it passes must then open
(and close) on the real service, or fail with :class:`StorageError` (a connection refused
by the server, say): never another exception, which ``werk server`` would print as a
traceback. Redis at 127.0.0.1:6379 and PostgreSQL at 127.0.0.1:5432 (skipped locally
without them, required in CI).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, urlencode
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import pg
from tests.storage.conftest import REDIS_URL, _delete_prefix, _redis_ready, _unavailable
from werk.errors import StorageError
from werk.server.settings import ConfigError, load_config
from werk.storage import StorageURLError, check_url, open_store
from werk.storage.postgres.url import WERK, options
from werk.storage.redis.url import OPTIONS as REDIS_OPTIONS

Pairs = list[tuple[str, str]]
PROPERTY = settings(
    deadline=None, max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

VALUES = st.one_of(
    st.sampled_from(
        ["", "0", "1", "2", "-1", "16", "99", "2.5", "nan", "inf", "1e309", "9" * 30]
        + ["true", "false", "yes", "off", "maybe", "werk:", "{werk}:", "a b", "x*", "é"]
        + ["require", "disable", "prefer", "TLSv1.2", "required", "none", "any", "w2"]
    ),
    st.text(max_size=12),
)


def names(known: list[str]) -> st.SearchStrategy[str]:
    """Known names, near misses of them, and any text."""
    near = [name[:-1] for name in known] + [name.upper() for name in known]
    return st.one_of(st.sampled_from(known), st.sampled_from(near), st.text(max_size=10))


def pairs_of(known: list[str], fitting: dict[str, list[str]]) -> st.SearchStrategy[Pairs]:
    """Up to 3 options: drawn names with drawn values, or a known name with a value that
    fits it (most of them good, so that many URLs pass the check and open)."""
    fit = st.sampled_from([(name, value) for name, values in fitting.items() for value in values])
    return st.lists(st.one_of(st.tuples(names(known), VALUES), fit, fit, fit, fit), max_size=3)


REDIS_FITTING = {
    "prefix": ["werk:", "{werk}:", "shop/a@b#1+x=y-z.", "a b", "x*"],
    "db": ["0", "2", "15", "16", "99"],
    "socket_timeout": ["5", "0.5", "1e-9"],
    "socket_connect_timeout": ["2", "0.001"],
    "socket_keepalive": ["true", "off", "0"],
    "health_check_interval": ["0", "30"],
    "max_connections": ["2", "8", "1000"],
    "client_name": ["werk-test", "w"],
    "ssl_cert_reqs": ["none", "required"],
    "ssl_check_hostname": ["false"],
    "ssl_ca_certs": ["/nonexistent/ca.pem"],
}
PG_FITTING = {
    "schema": ["w2", "werk", "pg_x", "Bad"],
    "pool": ["1", "4", "1000"],
    "connect_timeout": ["0", "5"],
    "sslmode": ["disable", "prefer", "require"],
    "application_name": ["werk test", "é+x"],
    "options": ["-c statement_timeout=5000", "-c bogus.x=1", "-c nonsense=1"],
    "client_encoding": ["UTF8", "nonsense"],
    "keepalives": ["1", "2"],
    "keepalives_idle": ["30"],
    "target_session_attrs": ["any", "read-write", "standby"],
    "channel_binding": ["disable", "require"],
    "require_auth": ["none", "password", "nope"],
    "load_balance_hosts": ["random"],
    "tcp_user_timeout": ["0"],
    "max_protocol_version": ["latest", "x"],
}


def with_query(base: str, pairs: Pairs) -> str:
    return f"{base}?{urlencode(pairs, quote_via=quote)}" if pairs else base


def refused_clearly(url: str, backend: str) -> bool:
    """Return True when ``check_url`` refuses ``url`` with one line for ``backend``."""
    try:
        check_url(url)
    except StorageURLError as exc:
        message = str(exc)
        assert message.startswith(f"{backend}: ") and "\n" not in message, message
        return True
    return False


async def opens_or_fails_cleanly(url: str) -> None:
    store = open_store(url)
    if hasattr(store, "retries"):
        store.retries = 0  # an unreachable socket fails at once, not after ~10 s
    try:
        await asyncio.wait_for(store.open(), 30)
    except StorageError:
        pass  # refused by the server or unreachable: a clean "cannot start: ..." line
    finally:
        await store.close()


@pytest.fixture(scope="module")
def redis_up() -> None:
    reason = asyncio.run(_redis_ready())
    if reason is not None:
        _unavailable(reason)


@pytest.fixture(scope="module")
def postgres_up() -> None:
    if not pg.pg_available():
        _unavailable(f"PostgreSQL at {pg.PG_ADMIN} is unreachable")


REDIS_NAMES = sorted({name for table in REDIS_OPTIONS.values() for name in table})


@PROPERTY
@given(
    base=st.sampled_from(
        [REDIS_URL, "redis://127.0.0.1:6379", "rediss://127.0.0.1:6379/1", "unix:///nonexistent"]
    ),
    pairs=pairs_of(REDIS_NAMES, REDIS_FITTING),
)
def test_any_redis_url_opens_or_is_refused_clearly(
    redis_up: None, base: str, pairs: list[tuple[str, str]]
) -> None:
    url = with_query(base, pairs)
    if refused_clearly(url, "redis"):
        return
    prefix = dict(pairs).get("prefix") or f"werktest:{uuid4().hex}:"
    if "prefix" not in dict(pairs):
        url = with_query(base, [*pairs, ("prefix", prefix)])
    try:
        asyncio.run(opens_or_fails_cleanly(url))
    finally:
        asyncio.run(_delete_prefix(prefix))


# Where to connect (host, port, dbname, user, service, ...) is left out: a wrong one is a
# connection error like any other (test_unreachable_postgres_raises_storage_error), and
# drawing host names would wait on name lookups.
WHERE = {"host", "hostaddr", "port", "dbname", "user", "service", "passfile", "requirepeer"}
PG_NAMES = [name for name in options() if name not in WHERE and not name.startswith("oauth")]


@PROPERTY
@given(pairs=pairs_of(PG_NAMES, PG_FITTING))
def test_any_postgres_url_opens_or_is_refused_clearly(
    postgres_up: None, pairs: list[tuple[str, str]]
) -> None:
    url = with_query(pg.pg_url(), pairs)
    if refused_clearly(url, "postgres"):
        return
    schema = dict(pairs).get("schema") or pg.new_schema()
    if "schema" not in dict(pairs):
        url = with_query(pg.pg_url(), [*pairs, ("schema", schema)])
    try:
        asyncio.run(opens_or_fails_cleanly(url))
    finally:
        pg.drop_schema(schema)


@given(pairs=st.lists(st.tuples(st.text(max_size=8), VALUES), min_size=1, max_size=3))
def test_a_sqlite_url_takes_no_options(pairs: list[tuple[str, str]]) -> None:
    assert refused_clearly(with_query("sqlite:///tmp/werk-data", pairs), "sqlite")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "redis://127.0.0.1:6379/0?prefx=newuser2:",
            "redis: unknown URL option 'prefx', did you mean 'prefix'? (known: prefix, db,",
        ),
        (
            "redis://127.0.0.1:6379/0?prefix=bad%20prefix",
            "redis: bad URL option prefix='bad prefix': 1 to 100 letters",
        ),
        ("redis://127.0.0.1:6379/zero", "redis: the database in the URL's path must be a number"),
        (
            "redis://127.0.0.1:6379/0?socket_keepalive=maybe",
            "redis: bad URL option socket_keepalive='maybe': must be true or false",
        ),
        ("redis://127.0.0.1:6379/0?db=one", "redis: bad URL option db='one': must be a whole"),
        ("redis://127.0.0.1:6379/0?db=1", "redis: the database is given twice"),
        (
            "postgresql://postgres@127.0.0.1/werk?schem=x",
            "postgres: unknown URL option 'schem', did you mean 'schema'? (known: schema, pool,",
        ),
        ("postgresql://postgres@127.0.0.1/werk?pool=many", "postgres: bad URL option pool='many'"),
    ],
)
def test_a_bad_option_is_one_line_naming_it(url: str, message: str, tmp_path: Path) -> None:
    # The same line from the API, the configuration and each command that takes --storage
    with pytest.raises(StorageURLError) as bad:
        open_store(url)
    assert str(bad.value).startswith(message)
    with pytest.raises(ConfigError, match="^" + message.replace("?", r"\?").replace("(", r"\(")):
        load_config({"config_dir": str(tmp_path), "storage_url": url}, env={})
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    for command in (["server", "-b", "127.0.0.1:0", "-w", ":0"], ["backup"], ["restore", "b"]):
        result = subprocess.run(
            [sys.executable, "-m", "werk", *command, "--storage", url, "-c", str(tmp_path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        )
        assert result.returncode in (1, 2), (command, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
        if command[0] == "server":
            assert f"cannot start: {message}" in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "werk", "bench", "push_bulk", "--storage", url],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert result.returncode == 2 and f"werk bench: {message}" in result.stderr, result.stderr


def test_werk_options_are_documented() -> None:
    text = Path("docs/storage-redis.md").read_text() + Path("docs/storage-postgres.md").read_text()
    for name in [*REDIS_NAMES, *WERK]:
        assert re.search(rf"[`?]{name}[`=]", text), name
