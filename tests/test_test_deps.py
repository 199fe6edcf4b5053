"""scripts/test-deps: one clear line when something is missing; it stops what it started."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import require
from tests.docblocks import ROOT

HIDDEN = {"node", "npm", "redis-server", "chromium", "chromium-browser", "google-chrome"}


def copy_script(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "test-deps", repo / "scripts" / "test-deps")
    repo.chmod(0o777)
    (repo / "scripts").chmod(0o777)
    return repo


def test_missing_programs_give_one_line_with_the_install_command() -> None:
    # (not pytest's tmp_path: the non-root user must reach the files, and its parents are 0700)
    with tempfile.TemporaryDirectory() as name:
        shared = Path(name)
        shared.chmod(0o755)
        run_without_programs(shared)


def run_without_programs(tmp_path: Path) -> None:
    # Given a PATH with every system program except node, npm, redis-server and Chromium
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in ("/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            target = bin_dir / name
            if name not in HIDDEN and not os.path.lexists(target):
                target.symlink_to(Path(directory) / name)
    tmp_path.chmod(0o755)
    bin_dir.chmod(0o755)
    repo = copy_script(tmp_path)
    command = ["./scripts/test-deps"]
    if os.geteuid() == 0:  # as root it would install them: run it as an ordinary user
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("runuser is needed to run the script as a non-root user")
        command = [runuser, "-u", "nobody", "--", *command]
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    # When it runs without root
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=60)
    # Then it stops with one line naming what is missing and the command that installs it
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith("test-deps: missing redis-server nodejs npm chromium: run ")
    assert "'sudo apt-get install redis-server nodejs npm chromium'" in line


def test_stop_stops_the_redis_it_started_and_only_that(tmp_path: Path) -> None:
    require(shutil.which("redis-server") is not None, "redis-server is needed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    repo = ROOT
    # Its own port and its own record of what it started: the services an outer
    # `make test` started are recorded elsewhere and stay up
    env = {
        **os.environ,
        "WERK_TEST_DEPS_REDIS_PORT": str(port),
        "WERK_TEST_DEPS_STATE": str(tmp_path / "state"),
    }
    started = subprocess.run(
        ["./scripts/test-deps"], cwd=repo, env=env, capture_output=True, text=True, timeout=300
    )
    try:
        assert started.returncode == 0, started.stderr
        assert f"starting redis-server on 127.0.0.1:{port}" in started.stderr
        assert socket.create_connection(("127.0.0.1", port), timeout=2)
    finally:
        stopped = subprocess.run(
            ["./scripts/test-deps", "--stop"], cwd=repo, env=env, capture_output=True, text=True
        )
    assert stopped.returncode == 0
    assert "stopping the redis-server it started" in stopped.stderr
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    # A second --stop has nothing left to stop (the shared services are never touched)
    again = subprocess.run(
        ["./scripts/test-deps", "--stop"], cwd=repo, env=env, capture_output=True, text=True
    )
    assert again.returncode == 0 and again.stderr == ""
