"""What ``werk server`` says when it starts, and when it cannot."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REDIS_URL, redis_available, require
from tests.helpers import ServerProcess
from tests.ops.conftest import make_certificate, write_conf
from werk import __version__
from werk.server.startup import public_url


def log_lines(server: ServerProcess) -> list[str]:
    """The log's messages, without the level letter and time stamp, once the startup block
    (which ends with the ``Web UI`` line) is all there."""
    deadline = time.monotonic() + 10
    while b"Web UI " not in server.log and time.monotonic() < deadline:
        time.sleep(0.01)
    return [line.split(" ", 2)[2] for line in server.log.decode().splitlines()]


def store_line(server: ServerProcess) -> str:
    """The startup block's ``store: ...`` line (a store's own warnings may come before it)."""
    return next(line for line in log_lines(server) if line.startswith("store: "))


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port that another socket is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_startup_lines_say_what_an_operator_needs(
    sqlite_server_factory: Callable[..., ServerProcess], config_dir: Path
) -> None:
    # Given a configuration file, a password and the web UI on a free port
    toml = write_conf(config_dir, "limits.toml", "[limits]\nmax_connections = 50\n")
    server = sqlite_server_factory(
        password="s3cret", web=True, extra_args=["-c", str(config_dir), "-e", "staging"]
    )
    # Then the first lines name the version, both addresses, the store and its directory,
    # the files read, the environment, and whether a password and TLS are on
    port, web = server.port, server.web_port
    assert log_lines(server) == [
        f"Werk {__version__} listening on 127.0.0.1:{port} (tcp://127.0.0.1:{port}),"
        f" environment staging, pid {server.proc.pid if server.proc else 0},"
        f" Python {sys.version.split()[0]}",
        f"store: embedded SQLite, data directory {server.data_dir};"
        " durability: fsync (+OK to a PUSH after its commit is fsynced)",
        "jobs: 0 queued, 0 in progress, 0 scheduled, 0 retries, 0 dead",
        f"configuration files read: {toml}",
        "password on, web UI password on, TLS off",
        f"Web UI on http://127.0.0.1:{web}/",
    ]


SAMPLE = Path(__file__).parents[2] / "packaging" / "conf.d" / "werk.toml"


@pytest.mark.parametrize("password", [None, "s3cret"])
def test_the_sample_configuration_in_a_new_home_warns_of_ports_open_without_a_password(
    sqlite_server_factory: Callable[..., ServerProcess], tmp_path: Path, password: str | None
) -> None:
    # Given a new user's home with the sample configuration copied where its header says
    # (development: ~/.werk/conf.d/werk.toml; it binds every interface, 0.0.0.0)
    home = tmp_path / "home"
    (home / ".werk" / "conf.d").mkdir(parents=True)
    shutil.copy(SAMPLE, home / ".werk" / "conf.d" / "werk.toml")
    # When werk server starts with it on every interface (free ports), with no password
    server = sqlite_server_factory(
        start=False, password=password, web=True, env={"HOME": str(home)}
    )
    server.host = "0.0.0.0"
    server.start()
    assert server.stop() == 0  # the whole log of the start is in
    lines = log_lines(server)
    assert f"configuration files read: {home / '.werk' / 'conf.d' / 'werk.toml'}" in lines
    # Then the start warns that anyone on the network can use both ports, unless a
    # password is set
    warnings = [line for line in server.log.decode().splitlines() if line.startswith("W ")]
    assert [line.split(" ", 2)[2].split(":")[0] for line in warnings] == (
        [
            "the work protocol listens on 0.0.0.0 without a password",
            "the web UI listens on 0.0.0.0 without a password",
        ]
        if password is None
        else []
    )


def test_startup_lines_without_files_with_tls_and_no_web_ui(
    sqlite_server_factory: Callable[..., ServerProcess], config_dir: Path
) -> None:
    make_certificate(config_dir)
    server = sqlite_server_factory(extra_args=["-c", str(config_dir)])
    lines = log_lines(server)
    assert f"(tcp+tls://127.0.0.1:{server.port})" in lines[0]
    assert "environment development" in lines[0]
    assert lines[3:] == [
        f"configuration files read: none (no {config_dir / 'conf.d'}/*.toml)",
        "password off, web UI password off, TLS on",
        "Web UI off",
    ]


def test_redis_store_line_hides_the_password(
    sqlite_server_factory: Callable[..., ServerProcess],
) -> None:
    require(redis_available(), "Redis at 127.0.0.1:6379 is not reachable")
    url = REDIS_URL.replace("redis://", "redis://:@") + "?prefix=werktest:startup:"
    server = sqlite_server_factory(extra_args=["--storage", url])
    assert store_line(server) == (
        f"store: Redis at {REDIS_URL}?prefix=werktest:startup: (from --storage);"
        " durability: backend (as durable as the storage backend is configured)"
    )
    assert public_url("redis://:pw@h:6379/0") == "redis://h:6379/0"
    assert public_url("redis://user:pw@h/1?x=1") == "redis://user@h/1?x=1"
    assert public_url("postgresql://werk:pw@db:5432/jobs") == "postgresql://werk@db:5432/jobs"
    assert public_url("postgresql://db/jobs?password=pw&sslmode=require") == (
        "postgresql://db/jobs?sslmode=require"
    )
    assert public_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_a_redis_url_in_the_environment_is_named_as_the_stores_source(
    sqlite_server_factory: Callable[..., ServerProcess],
) -> None:
    # Given REDIS_URL set for an application (Faktory reads it too) and no --storage
    require(redis_available(), "Redis at 127.0.0.1:6379 is not reachable")
    url = REDIS_URL + "?prefix=werktest:startupenv:"
    server = sqlite_server_factory(env={"REDIS_URL": url})
    # Then the store line says where the URL came from, and (this Redis keeps no
    # append-only file) a warning says what +OK means there
    line = store_line(server)
    assert line.startswith(f"store: Redis at {url} (from REDIS_URL); durability: backend")
    assert any("Redis keeps no append-only file" in line for line in log_lines(server))


def run_server(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WERK_", "FAKTORY_"))}
    return subprocess.run(
        [sys.executable, "-m", "werk", "server", "-d", str(tmp_path / "db"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**env, "WERK_CONFIG_DIR": str(tmp_path / "conf")},
    )


def test_a_taken_work_port_is_the_first_line_and_names_the_address(
    tmp_path: Path, taken_port: int
) -> None:
    done = run_server(tmp_path, "-b", f"127.0.0.1:{taken_port}", "-w", ":0")
    assert done.returncode == 1
    first = done.stderr.splitlines()[0]
    assert first.startswith("E ")
    assert first.endswith(
        f"cannot start: the work protocol cannot listen on 127.0.0.1:{taken_port}: the address"
        " is already in use (another Werk or Faktory server?): stop that process or choose"
        " another -b host:port"
    )


def test_a_taken_web_port_is_the_first_line_and_names_the_address(
    tmp_path: Path, taken_port: int
) -> None:
    done = run_server(tmp_path, "-b", "127.0.0.1:0", "-w", f"127.0.0.1:{taken_port}")
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert f"cannot start: the web UI cannot listen on 127.0.0.1:{taken_port}" in lines[0]
    assert "-w host:port" in lines[0]
    assert "listening on" not in done.stderr  # nothing claims it started


def test_a_bad_configuration_is_the_first_line(tmp_path: Path) -> None:
    write_conf(tmp_path / "conf", "bad.toml", "[limits\n")
    done = run_server(tmp_path, "-b", "127.0.0.1:0", "-w", ":0")
    assert done.returncode == 1
    assert "cannot start:" in done.stderr.splitlines()[0]
    assert "bad.toml: invalid TOML" in done.stderr.splitlines()[0]


@pytest.mark.parametrize("level", ["warn", "warning"])
def test_log_level_takes_faktorys_and_pythons_name_for_warnings(
    tmp_path: Path, taken_port: int, level: str
) -> None:
    # -l warn is Faktory's spelling, -l warning Python's (and werk worker's): both start
    # the server at that level, so the refused port is logged and the exit code is 1, not
    # argparse's 2
    done = run_server(tmp_path, "-l", level, "-b", f"127.0.0.1:{taken_port}", "-w", ":0")
    assert done.returncode == 1, done.stderr
    assert "cannot start: the work protocol cannot listen" in done.stderr.splitlines()[0]
