"""Fixtures for the operations tests: configuration directories, certificates, servers."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ServerProcess


def write_conf(config_dir: Path, name: str, text: str) -> Path:
    """Write ``conf.d/<name>`` under ``config_dir`` and return its path."""
    path = config_dir / "conf.d" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """Create a self-signed certificate for localhost/127.0.0.1 with ``openssl req``."""
    cert, key = directory / "public.cert.pem", directory / "private.key.pem"
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """An empty configuration directory."""
    path = tmp_path / "config"
    (path / "conf.d").mkdir(parents=True)
    return path


@pytest.fixture
def sqlite_server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start ``werk server`` subprocesses on the embedded SQLite store only (for tests that
    only make sense there: backup, restore, durability across SIGTERM); all are killed at
    the end."""
    started: list[ServerProcess] = []

    def factory(data_dir: Path | None = None, start: bool = True, **kwargs: Any) -> ServerProcess:
        server = ServerProcess(data_dir or tmp_path / f"data{len(started)}", **kwargs)
        started.append(server)
        return server.start() if start else server

    yield factory
    for server in started:
        server.kill()
