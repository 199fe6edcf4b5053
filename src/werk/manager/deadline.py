"""Deadlines of the server's bounded waits (FETCH, RESULT, LIMIT): never reached early.

uvloop keeps time in whole milliseconds, so a timer armed for ``t`` seconds can fire up to
about a millisecond before ``t`` has passed. A wait that answers "``timeout`` seconds passed"
measures them on :func:`time.monotonic` instead, and arms its timers a little late
(:data:`TIMER_SLACK`), so that it neither answers early nor spins on timers that fire
before their time.
"""

from __future__ import annotations

import time
from typing import Final

TIMER_SLACK: Final = 0.0015
"""Seconds added to every timer armed for a deadline: more than the event loop's clock
resolution (1 ms in uvloop)."""


class Deadline:
    """A point ``seconds`` from now on the monotonic clock.

    Args:
        seconds: how long from now; negative counts as 0.
    """

    __slots__ = ("at",)

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + max(seconds, 0.0)

    def remaining(self) -> float:
        """Seconds left (0 or less once the deadline has passed)."""
        return self.at - time.monotonic()

    def timer(self, cap: float | None = None) -> float:
        """Seconds to arm a timer for, to wake at the deadline (or after ``cap`` seconds,
        if sooner) and not before it."""
        left = self.remaining()
        return (left if cap is None else min(left, cap)) + TIMER_SLACK
