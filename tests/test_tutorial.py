"""docs/tutorial.md, followed step by step: its files and commands, against a real server.

Every block the tutorial marks ``<!-- run: tests/test_tutorial.py -->`` is used here: the
files (their first line names them) are written as they are, the shell block's command is
run as it is. Node.js parts use the faktory-worker copy of tests/compat/node.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.conftest import wait_until
from tests.conftest import require
from tests.docblocks import ROOT, Output, blocks_run_by, write_files
from tests.helpers import ServerProcess

NODE_MODULES = ROOT / "tests" / "compat" / "node" / "node_modules"


@pytest.fixture
def tutorial(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A directory holding the tutorial's files, and the environment pointing at a server."""
    server = ServerProcess(tmp_path / "data").start()
    work = tmp_path / "tutorial"
    names = write_files(blocks_run_by("tests/test_tutorial.py", "docs/tutorial.md"), work)
    assert names == {"tasks.py", "push.py", "push.js", "worker.js", "push_image.py"}
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "WERK_URL": server.url,
        "FAKTORY_URL": server.url,
        "NODE_PATH": str(NODE_MODULES),
    }
    yield work, env
    server.kill()


def shell_command(start: str) -> str:
    """The tutorial's shell line that starts with ``start`` (it must be there)."""
    for block in blocks_run_by("tests/test_tutorial.py", "docs/tutorial.md"):
        for line in block.code.splitlines():
            if line.startswith(start):
                return line
    raise AssertionError(f"docs/tutorial.md has no run-marked command {start!r}")


def test_python_worker_runs_jobs_pushed_from_python_and_node(
    tutorial: tuple[Path, dict[str, str]],
) -> None:
    work, env = tutorial
    worker = Output(["sh", "-c", shell_command("werk worker")], work, env)
    try:
        subprocess.run([sys.executable, "push.py"], cwd=work, env=env, check=True, timeout=30)
        wait_until(lambda: "welcome mail to ada@example.com" in worker.text, timeout=20)
        node = shutil.which("node")
        require(node is not None and NODE_MODULES.is_dir(), "node and npm ci in tests/compat/node")
        assert node is not None
        subprocess.run([node, "push.js"], cwd=work, env=env, check=True, timeout=30)
        wait_until(lambda: "welcome mail to grace@example.com" in worker.text, timeout=20)
    finally:
        worker.stop()


def test_node_worker_runs_a_job_pushed_from_python(
    tutorial: tuple[Path, dict[str, str]],
) -> None:
    work, env = tutorial
    node = shutil.which("node")
    require(node is not None and NODE_MODULES.is_dir(), "node and npm ci in tests/compat/node")
    assert node is not None
    worker = Output([node, "worker.js"], work, env)
    try:
        subprocess.run([sys.executable, "push_image.py"], cwd=work, env=env, check=True, timeout=30)
        wait_until(lambda: "resizing cat.png" in worker.text, timeout=20)
    finally:
        worker.stop()
