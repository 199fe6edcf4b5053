"""The warning logged for each wrong password, at most :data:`BURST` a minute.

A password-guessing client cannot flood the log: past the burst, failures are counted, not
logged, and the next line logged says how many were left out (Werk's own rule; Faktory
logs nothing for a wrong password).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

log = logging.getLogger("werk.server")

BURST: Final = 10
"""Wrong-password lines logged per :data:`WINDOW`."""
WINDOW: Final = 60.0
"""Seconds of one logging window."""


class AuthFailureLog:
    """Logs ``wrong password from <peer>`` warnings, :data:`BURST` per :data:`WINDOW`.

    Args:
        clock: monotonic seconds (tests pass a controlled one).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._window_start = -WINDOW
        self._logged = 0
        self.unlogged = 0
        """Failures not logged since the last line (over the burst)."""

    def failed(self, peer: str) -> None:
        """Log one wrong-password login from ``peer`` (``host:port``), unless over the burst."""
        now = self._clock()
        if now - self._window_start >= WINDOW:
            self._window_start, self._logged = now, 0
        if self._logged >= BURST:
            self.unlogged += 1
            return
        self._logged += 1
        left_out = ""
        if self.unlogged:
            left_out = f" ({self.unlogged} more wrong passwords before it were not logged)"
            self.unlogged = 0
        log.warning("wrong password from %s: connection refused%s", peer, left_out)
