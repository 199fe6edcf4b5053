"""Shared fixtures: a real ``werk server`` subprocess, a raw peer, the CI rules."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import uuid4

import hypothesis  # noqa: F401 - see below
import pytest

from tests import pg
from tests.helpers import Peer, ServerProcess
from werk.protocol.resp import Simple

IN_CI = bool(os.environ.get("CI"))
# hypothesis is imported now, not by its plugin's end-of-run summary: after the worker tests,
# Python 3.11.7 fails to parse a module then ("AST constructor recursion depth mismatch",
# CPython gh-106905), and the plugin's import is parsed by pytest's assertion rewriter.


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--slow`` also runs the tests marked ``slow`` (skipped by default)."""
    parser.addoption("--slow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``slow`` tests unless ``--slow`` is given or ``-m`` names the marker."""
    if config.getoption("--slow") or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow (or -m slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def _sendable(text: str) -> str:
    """``text`` with lone surrogates escaped (``\\udcff``), as UTF-8 can carry it."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Escape lone surrogates in a report's captured output and failure text: tests of bad
    input log them (a job's error message with U+DCFF), and pytest-xdist sends reports
    between processes as UTF-8, which cannot carry them (its worker would crash)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    report.sections = [(title, _sendable(text)) for title, text in report.sections]
    if report.longrepr is not None:
        text = str(report.longrepr)
        if _sendable(text) != text:
            report.longrepr = _sendable(text)


def require(condition: bool, reason: str) -> None:
    """Skip a test when ``condition`` fails, except in CI, where it fails the test."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def pg_session_database() -> Iterator[None]:
    """Drop the session's PostgreSQL scratch database (``tests/pg.py``) at the end."""
    yield
    pg.drop_session_database()


@pytest.fixture(autouse=True)
def close_peers() -> Iterator[None]:
    """Close every raw peer a test opened."""
    yield
    while Peer.opened:
        Peer.opened.pop().close()


REDIS_URL = "redis://127.0.0.1:6379/2"


def redis_available() -> bool:
    """Return True when a Redis answers at 127.0.0.1:6379."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def delete_prefix(prefix: str) -> None:
    """Delete every key under ``prefix`` in the test database (never FLUSHDB: shared)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


@pytest.fixture
def shared_postgres() -> Iterator[str]:
    """A ``--storage`` URL naming a fresh schema of the session's PostgreSQL database
    (``tests/pg.py``), dropped after the test."""
    with backend_storage("postgres") as url:
        assert url is not None
        yield url


BACKENDS = ["sqlite", "redis", "postgres"]


@contextmanager
def backend_storage(name: str) -> Iterator[str | None]:
    """The ``--storage`` URL of fresh data on backend ``name`` (``None``: the embedded
    SQLite store in the server's data directory): a Redis key prefix or a PostgreSQL schema
    of its own, deleted at the end."""
    if name == "sqlite":
        yield None
        return
    if name == "postgres":
        require(pg.pg_available(), f"PostgreSQL at {pg.PG_ADMIN} is not reachable")
        schema = pg.new_schema()
        yield pg.schema_url(schema)
        pg.drop_schema(schema)
        return
    require(redis_available(), "Redis at 127.0.0.1:6379 is not reachable")
    prefix = f"werktest:{uuid4().hex}:"
    yield f"{REDIS_URL}?prefix={prefix}"
    delete_prefix(prefix)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The storage of the servers a test starts: the embedded SQLite store, a Redis key
    prefix of its own, or a PostgreSQL schema of its own (a ``--storage`` URL), deleted
    after the test."""
    with backend_storage(request.param) as url:
        yield url


@pytest.fixture(scope="module", params=BACKENDS)
def module_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One ``werk server`` per backend for a whole module, for tests that each FLUSH it
    first (``flushed_peer``) and change nothing a later test could see but the store's
    contents: a server start costs more than most such tests."""
    with backend_storage(request.param) as url:
        extra = ["--storage", url] if url is not None else []
        server = ServerProcess(tmp_path_factory.mktemp("module-server"), extra_args=extra)
        yield server.start()
        server.kill()


@pytest.fixture
def flushed_server(module_server: ServerProcess) -> ServerProcess:
    """``module_server`` emptied by FLUSH: the test starts on an empty store, as on a server
    of its own (FLUSH keeps only the worker process records)."""
    conn = Peer(module_server.host, module_server.port)
    assert conn.hello() == Simple("OK")
    assert conn.call("FLUSH") == Simple("OK")
    return module_server


@pytest.fixture
def flushed_peer(flushed_server: ServerProcess) -> Peer:
    """A raw peer that has said HELLO (no wid) to ``flushed_server``."""
    conn = Peer(flushed_server.host, flushed_server.port)
    assert conn.hello() == Simple("OK")
    return conn


SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
"""Run a test on the embedded store only, where what it checks is the client's or the
worker's side (log lines, flags, timeouts, ports) and the storage behind the server does
not change it; storage behaviour is checked on every backend by tests/server,
tests/storage and the client tests left on all three."""


@pytest.fixture
def werk_server_factory(
    tmp_path: Path, backend: str | None
) -> Iterator[Callable[..., ServerProcess]]:
    """Return a factory that starts ``werk server`` subprocesses on the test's backend; all
    are killed at the end. Servers of one test share the backend's data."""
    started: list[ServerProcess] = []

    def factory(password: str | None = None, **kwargs: Any) -> ServerProcess:
        data_dir = tmp_path / f"data{len(started)}"
        extra = list(kwargs.pop("extra_args", ()))
        if backend is not None and "--storage" not in extra:
            extra += ["--storage", backend]
        server = ServerProcess(data_dir, password=password, extra_args=extra, **kwargs)
        started.append(server)
        return server.start()

    yield factory
    for server in started:
        server.kill()


@pytest.fixture
def werk_server(werk_server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    """A running ``werk server`` with no password, on a free port and a temporary data dir."""
    return werk_server_factory()


@pytest.fixture
def peer_factory(werk_server: ServerProcess) -> Iterator[Callable[[], Peer]]:
    """Return a factory of raw protocol peers connected to ``werk_server``."""
    peers: list[Peer] = []

    def factory() -> Peer:
        peer = Peer(werk_server.host, werk_server.port)
        peers.append(peer)
        return peer

    yield factory
    for peer in peers:
        peer.close()


@pytest.fixture
def peer(peer_factory: Callable[[], Peer]) -> Peer:
    """A raw peer that has said HELLO (no wid) to ``werk_server``."""
    conn = peer_factory()
    assert conn.hello() == Simple("OK")
    return conn
