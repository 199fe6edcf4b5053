"""Progress for long commands (``werk backup``, ``restore``, ``bench``): one line redrawn
in place on a terminal, nothing at all when stderr is a pipe or a file, so scripts and logs
only get the command's own output and its one-line summary.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

REDRAW_EVERY = 0.1
"""Seconds between redraws (a fast loop does not flood the terminal)."""


def size_text(count: int) -> str:
    """``532 B``, ``12.4 MB``, ``1.2 GB`` (decimal units)."""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def duration_text(seconds: float) -> str:
    """``0.4 s``, ``12 s``, ``3 min 05 s``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def counts_text(counts: dict[str, int] | None) -> str:
    """A store's counts (a backup manifest's ``counts``) in words: ``13 jobs (3 enqueued,
    0 in progress, 0 scheduled, 10 retries, 0 dead); 25 processed, 10 failed``; ``""`` for
    no counts. Keys that are missing count as 0."""
    if not counts:
        return ""
    get = counts.get
    held = get("queued", 0) + get("working", 0)
    held += get("scheduled", 0) + get("retries", 0) + get("dead", 0)
    return (
        f"{held} jobs ({get('queued', 0)} enqueued, {get('working', 0)} in progress,"
        f" {get('scheduled', 0)} scheduled, {get('retries', 0)} retries, {get('dead', 0)} dead);"
        f" {get('processed', 0)} processed, {get('failures', 0)} failed"
    )


class Progress:
    """A progress line on ``stream`` (default stderr) when it is a terminal.

    Args:
        label: the command, shown first (``backup``).
        stream: where to draw; nothing is drawn unless it is a TTY (or ``enabled``).
        enabled: force drawing on or off (tests).
    """

    def __init__(self, label: str, stream: TextIO | None = None, enabled: bool | None = None):
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.started = time.monotonic()
        self._drawn_at = 0.0
        self._width = 0

    def show(self, text: str, force: bool = False) -> None:
        """Redraw the line as ``label: text`` (at most every :data:`REDRAW_EVERY` s)."""
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._drawn_at < REDRAW_EVERY:
            return
        self._drawn_at = now
        line = f"{self.label}: {text}"
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    def step(self, phase: str, done: int, total: int) -> None:
        """Show a phase with a byte count: ``checksum 12.0 MB of 48.0 MB (25%)``."""
        share = f" ({100 * done // total}%)" if total else ""
        self.show(f"{phase} {size_text(done)} of {size_text(total)}{share}", force=done == 0)

    def clear(self) -> None:
        """Erase the line (before the summary is printed)."""
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0

    @property
    def elapsed(self) -> float:
        """Seconds since the progress started."""
        return time.monotonic() - self.started
