"""The fenced code blocks of README.md and docs/, with the marker that says who runs them.

Every block carries, on the nearest non-blank line above its opening fence, one of:

- ``<!-- run: tests/some/test_file.py -->``: that test file runs the block (it names the
  document it reads, and finds its blocks with :func:`blocks_run_by`);
- ``<!-- not-run: why -->`` (or bare ``<!-- not-run -->``): an illustration, a transcript, a
  fragment, or a command no test can run here;
- ``<!-- python-example:start -->``: the client quick start, which
  tests/client/test_readme_example.py runs.

tests/test_doc_blocks.py enforces it; CONTRIBUTING.md tells contributors.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^\s*(```+|~~~+)\s*([^`\s]*)")
MARKER = re.compile(r"^\s*<!--\s*(run|not-run)\s*(?::\s*(.*?))?\s*-->\s*$")
LEGACY = {"<!-- python-example:start -->": "tests/client/test_readme_example.py"}


@dataclass(frozen=True, slots=True)
class DocBlock:
    """One fenced block: where it is, its info string, its text and its marker."""

    doc: str
    """Path of the document relative to the repository root, e.g. ``docs/tutorial.md``."""
    line: int
    """1-based line number of the opening fence."""
    language: str
    code: str
    kind: str | None
    """``run``, ``not-run``, or ``None`` when unmarked."""
    target: str
    """For ``run``: the test file; for ``not-run``: the reason (may be empty)."""


def documents() -> list[Path]:
    """README.md and every Markdown file under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _marker(previous: str) -> tuple[str | None, str]:
    stripped = previous.strip()
    if stripped in LEGACY:
        return "run", LEGACY[stripped]
    match = MARKER.match(previous)
    if match is None:
        return None, ""
    return match.group(1), match.group(2) or ""


def parse(path: Path, root: Path = ROOT) -> list[DocBlock]:
    """Return the fenced code blocks of one Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    doc = path.relative_to(root).as_posix()
    blocks: list[DocBlock] = []
    previous = ""
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if match is None:
            if lines[index].strip():
                previous = lines[index]
            index += 1
            continue
        fence, start = match.group(1), index
        index += 1
        body: list[str] = []
        while index < len(lines) and not lines[index].strip().startswith(fence):
            body.append(lines[index])
            index += 1
        kind, target = _marker(previous)
        blocks.append(
            DocBlock(doc, start + 1, match.group(2), "\n".join(body) + "\n", kind, target)
        )
        previous = ""
        index += 1
    return blocks


def blocks_run_by(test_file: str, doc: str) -> list[DocBlock]:
    """The blocks of ``doc`` (e.g. ``"README.md"``) marked ``<!-- run: test_file -->``."""
    return [b for b in parse(ROOT / doc) if b.kind == "run" and b.target == test_file]


def write_files(blocks: Iterable[DocBlock], directory: Path) -> set[str]:
    """Write each block whose first line is a comment naming a file (``# tasks.py``,
    ``// push.js``) into ``directory``; return the names written."""
    directory.mkdir(parents=True, exist_ok=True)
    names = set()
    for block in blocks:
        first = block.code.splitlines()[0] if block.code.strip() else ""
        if first.startswith(("# ", "// ")) and first.split()[-1].endswith((".py", ".js")):
            name = first.split()[-1]
            (directory / name).write_text(block.code)
            names.add(name)
    return names


class Output:
    """A process whose stdout and stderr are collected as they come."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        # A session of its own: ``stop`` signals the whole group, so a program a shell line
        # started (``sh -c "werk worker ..."``) stops with it instead of outliving the test.
        self.proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.text = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.text += line

    def stop(self) -> None:
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.proc.wait()

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signum)
