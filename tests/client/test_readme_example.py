"""The Python example of docs/client.md (and of README.md, once copied there) really runs,
on the server's embedded store (the example pushes and runs a job; the storage does not
change what it shows)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.client.conftest import wait_until
from tests.conftest import SQLITE_ONLY
from tests.helpers import ServerProcess
from werk.client import Client

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(
    r"<!-- python-example:start -->\s*```python\n(.*?)```\s*<!-- python-example:end -->", re.S
)


def examples() -> list[tuple[str, str]]:
    """The example blocks: always docs/client.md, README.md when it has the markers.

    README.md markers with nothing between them yet give an empty block (skipped).
    """
    found = []
    for name in ("docs/client.md", "README.md"):
        path = ROOT / name
        text = path.read_text() if path.exists() else ""
        if name == "README.md" and "<!-- python-example:start -->" not in text:
            continue
        match = BLOCK.search(text)
        found.append((name, match.group(1) if match else ""))
    return found


def test_docs_and_readme_examples_agree() -> None:
    blocks = {name: code for name, code in examples() if code}
    assert "docs/client.md" in blocks, "docs/client.md has no python-example block"
    assert len(set(blocks.values())) == 1, "README.md's example differs from docs/client.md's"


def distinct_examples() -> list[tuple[str, str]]:
    """One ``(names, code)`` per different block: README.md's copy, which
    test_docs_and_readme_examples_agree holds equal to docs/client.md's, runs once with it."""
    names_of: dict[str, list[str]] = {}
    for name, code in examples():
        names_of.setdefault(code, []).append(name)
    return [(" + ".join(names), code) for code, names in names_of.items()]


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("name", "code"), distinct_examples(), ids=[n for n, _ in distinct_examples()]
)
def test_example_runs(name: str, code: str, werk_server: ServerProcess, tmp_path: Path) -> None:
    if not code:
        pytest.skip(f"{name} has the python-example markers but no block yet")
    script = tmp_path / "example.py"
    script.write_text(code)
    env = {**os.environ, "WERK_URL": werk_server.url}
    proc = subprocess.Popen(
        [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        with Client(werk_server.url) as client:
            wait_until(lambda: client.info()["faktory"]["total_processed"] >= 1, timeout=20)
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr.decode()
    assert b"2 + 3 = 5" in stdout
