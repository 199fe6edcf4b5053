"""mypy checks the task API: it accepts correct pushes and rejects wrong arguments.

Runs mypy (strict) as a subprocess on ``typing_samples/``: ``accept_tasks.py`` must have no
error, and ``reject_tasks.py`` exactly one error on each line marked ``# E: <code>``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SAMPLES = Path(__file__).parent / "typing_samples"
ERROR = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[a-z-]+)\]$")


def test_mypy_accepts_and_rejects_task_pushes(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path), str(SAMPLES)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    found: dict[str, set[tuple[int, str]]] = {"accept_tasks.py": set(), "reject_tasks.py": set()}
    for line in done.stdout.splitlines():
        if match := ERROR.match(line):
            found[Path(match["file"]).name].add((int(match["line"]), match["code"]))
    assert found["accept_tasks.py"] == set(), done.stdout
    reject = (SAMPLES / "reject_tasks.py").read_text().splitlines()
    expected = {
        (number, marker.group(1))
        for number, text in enumerate(reject, 1)
        if (marker := re.search(r"# E: ([a-z-]+)$", text))
    }
    assert len(expected) >= 8
    assert found["reject_tasks.py"] == expected, done.stdout
