"""Arithmetic of the rate limiters and expiring records, shared by every backend.

Each backend keeps the state its own way (SQLite tables, Redis hashes and sorted sets);
the rules (interval boundaries, leaky-bucket draining, the float slack, valid settings)
live here once so that every backend grants exactly the same units.
"""

from __future__ import annotations

import math
from typing import Final

PURGE: Final = 100
"""Most expired locks or records one write deletes on its way."""

LEAK_EPSILON: Final = 1e-9
"""Slack for a leaky bucket's float level, so that a drained unit is never refused by a
rounding error (the Redis store uses the same value and arithmetic)."""


def leaky_level(level: float, last: float, now: float, rate: float) -> tuple[float, float]:
    """Drain a leaky bucket from ``last`` to ``now``; return its level and new last time."""
    elapsed = now - last if now > last else 0.0
    level = level - elapsed * rate
    return (level if level > 0 else 0.0), (now if now > last else last)


def units(level: float) -> int:
    """The whole units a leaky bucket's level counts as (a rounding error is no unit)."""
    return max(0, math.ceil(level - LEAK_EPSILON))


def bucket_start(now: float, period: float) -> float:
    """The start of the ``bucket`` interval holding ``now`` (a multiple of ``period``)."""
    return float(math.floor(now / period) * period)


def check_limits(limit: int, period: float) -> None:
    """Refuse limiter settings that could never grant or would divide by zero.

    Raises:
        ValueError: ``limit`` is below 1 or ``period`` is not positive.
    """
    if limit < 1:
        raise ValueError(f"a limiter's limit must be at least 1, not {limit}")
    if not period > 0:
        raise ValueError(f"a limiter's period must be positive, not {period}")
