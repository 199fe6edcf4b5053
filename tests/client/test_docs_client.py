"""Every Python example of docs/client.md runs against a real server.

Each ```python block runs as its own script, with ``WERK_URL`` pointing at a ``werk server``
started for this module. A worker in an example runs for a few seconds and then stops as if
sent SIGTERM (the docs' ``worker.run()`` would otherwise wait for Ctrl-C).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ServerProcess
from werk.client import Client

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "client.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
WORKER_SECONDS = 3.0
PRELUDE = f"""\
import threading
from werk.client import worker as _worker_module

_run = _worker_module.Worker.run


def _run_briefly(self, **kwargs):
    threading.Timer({WORKER_SECONDS}, self.stop).start()
    return _run(self, **kwargs)


_worker_module.Worker.run = _run_briefly
"""


def blocks() -> list[tuple[str, str]]:
    """``(id, code)`` of every Python block, the id naming the section it is in."""
    text = DOC.read_text()
    found = []
    for match in BLOCK.finditer(text):
        headings = re.findall(r"^#+ (.+)$", text[: match.start()], re.M)
        section = re.sub(r"\W+", "-", headings[-1] if headings else "top").strip("-").lower()
        found.append((f"{len(found)}-{section}", match.group(1)))
    return found


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("docs-data")).start()
    yield server
    server.kill()


def test_the_doc_has_examples_for_tasks_first() -> None:
    ids = [name for name, _ in blocks()]
    assert len(ids) >= 7 and ids[0].endswith("quick-start") and ids[1].endswith("tasks")


@pytest.mark.parametrize(("name", "code"), blocks(), ids=[name for name, _ in blocks()])
def test_example_runs(name: str, code: str, docs_server: ServerProcess, tmp_path: Path) -> None:
    with Client(docs_server.url) as client:
        client.flush()  # each example starts on an empty server, as a reader's would
    script = tmp_path / "example.py"
    script.write_text(PRELUDE + code)
    env = {**os.environ, "WERK_URL": docs_server.url}
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    # A failure's traceback is logged on purpose in the examples that fail a job
    failing = ("resize", "NoRetry", "retry_on")
    assert "Traceback" not in done.stderr or any(w in code for w in failing), done.stderr
    if "NoRetry" in code:
        assert "fetched https://example.com/feed on try 2" in done.stdout
        assert "gave up on import_row ['twelve'] after NoRetry" in done.stdout
        assert done.stdout.rstrip().endswith("dead: 1")
    if "retry_on" in code:
        assert done.stdout.splitlines() == [
            "render ['home'] retry in 10 s",
            "sync_account [7] retry in 60 s",
            "dead: 1",
        ], done.stdout
    if "build_report" in code:
        assert "built q3 (1, 2)" in done.stdout
    if "def add(" in code and "result_ttl" not in code:
        assert "2 + 3 = 5" in done.stdout
    if "client.processes()" in code:  # this worker's line (another example's may linger)
        assert "['thumbnails'] running 1" in done.stdout, done.stdout
    if 'iter_jobs("working")' in code:
        lines = done.stdout.splitlines()
        assert lines[0].startswith("Resize ['cat.png'] ") and lines[1:] == ["1"], done.stdout
    elif "iter_jobs" in code and "retry_on" not in code:
        lines = done.stdout.splitlines()
        assert lines[0] == "2 None" and len(lines) == 4, done.stdout
        assert "['user1@example.com'] mailbox full" in lines[1] + lines[2], done.stdout
        assert lines[3].startswith("['user1@example.com'] 20"), done.stdout
    if "result_ttl" in code and "chain(" not in code:
        assert done.stdout.split("\n")[:2] == ["5", "ValueError image 42 is not an image"]
    if "chain(" in code:
        assert done.stdout.split("\n")[0] == "notify CHARGED 1250 EUR FOR ORDER 7"
