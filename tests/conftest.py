"""Shared fixtures: a real ``werk server`` subprocess, a raw peer, the CI rules."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Peer, ServerProcess
from werk.protocol.resp import Simple

IN_CI = bool(os.environ.get("CI"))


def require(condition: bool, reason: str) -> None:
    """Skip a test when ``condition`` fails, except in CI, where it fails the test."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def close_peers() -> Iterator[None]:
    """Close every raw peer a test opened."""
    yield
    while Peer.opened:
        Peer.opened.pop().close()


@pytest.fixture
def werk_server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Return a factory that starts ``werk server`` subprocesses; all are killed at the end."""
    started: list[ServerProcess] = []

    def factory(password: str | None = None, **kwargs: Any) -> ServerProcess:
        data_dir = tmp_path / f"data{len(started)}"
        server = ServerProcess(data_dir, password=password, **kwargs)
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
