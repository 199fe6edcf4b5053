"""The README's run command, on a copy of the repository, in a fresh virtualenv, serves.

This is what a new user does first: ``make run`` builds ``.venv`` from nothing (pip takes
the packages from its cache when it can) and starts ``werk server`` on the embedded store.
Only the ports (0: free ones) and the data and configuration directories (temporary) differ
from a user's run; the command itself is read from README.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.docblocks import ROOT, blocks_run_by

WEB_URL = re.compile(r"web UI\b.*?(https?://[^/\s]+)", re.I)
INSTALL_TIMEOUT = 300.0


def copy_repository(target: Path) -> None:
    """Copy the files git tracks (and new, not ignored ones): no .venv, no caches."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("git is needed to copy the repository")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (item.decode() for item in listed)):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def wait_for_web_url(proc: subprocess.Popen[str], log: list[str]) -> str:
    """Read the server's output until it names the web UI's URL; return the URL."""
    assert proc.stdout is not None
    deadline = time.monotonic() + INSTALL_TIMEOUT
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        log.append(line)
        match = WEB_URL.search(line)
        if match:
            return match.group(1)
    raise AssertionError("the server never printed its web UI URL:\n" + "".join(log))


@pytest.mark.timeout(INSTALL_TIMEOUT + 60)
def test_readme_run_command_reaches_health(tmp_path: Path) -> None:
    (command,) = [
        block.code.strip() for block in blocks_run_by("tests/test_firstrun.py", "README.md")
    ]
    repo = tmp_path / "werk"
    copy_repository(repo)
    home_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("WERK_", "FAKTORY_"))},
        "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", str(home_cache / "pip")),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "WERK_BINDING": "127.0.0.1:0",
        "WERK_WEB_BINDING": "127.0.0.1:0",
        "WERK_DATA_DIR": str(tmp_path / "db"),
        "WERK_CONFIG_DIR": str(tmp_path / "conf"),
    }
    env.pop("VIRTUAL_ENV", None)
    env.pop("MAKEFLAGS", None)
    proc = subprocess.Popen(
        ["sh", "-c", command],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    log: list[str] = []
    try:
        url = wait_for_web_url(proc, log)
        with urllib.request.urlopen(f"{url}/health", timeout=10) as response:
            assert response.status == 200
            health = json.loads(response.read())
        assert health
        assert (repo / ".venv" / "bin" / "werk").exists()
        assert (tmp_path / "db").is_dir()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
