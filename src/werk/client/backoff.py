"""Reconnect delays: exponential backoff with full jitter, capped."""

from __future__ import annotations

import random
from collections.abc import Iterator


def backoff_delays(base: float = 0.1, cap: float = 10.0) -> Iterator[float]:
    """Yield an endless series of delays for reconnect attempts.

    The n-th delay is uniform in ``[0, min(cap, base * 2**n)]`` ("full jitter"), so many
    workers that lost the same server do not reconnect in lock step.

    Args:
        base: the upper bound of the first delay, in seconds.
        cap: the largest upper bound, in seconds.
    """
    attempt = 0
    while True:
        yield random.uniform(base / 2, min(cap, base * 2**attempt))
        attempt = min(attempt + 1, 30)
