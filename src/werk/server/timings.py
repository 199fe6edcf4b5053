"""Cheap per-verb command counters and duration histograms, for ``/metrics`` and statsd.

Recording is one dict lookup, one ``bisect`` and three additions per command: cheap enough
to run on every command without measurable cost. Buckets are cumulative only when
rendered.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Final

BUCKETS: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                  0.5, 1.0, 2.5, 5.0)  # fmt: skip
"""Upper bounds in seconds; the last, implicit bucket is +Inf."""


class Histogram:
    """Count, sum and per-bucket counts of observed durations (seconds)."""

    __slots__ = ("count", "sum", "buckets")

    def __init__(self) -> None:
        self.count = 0
        self.sum = 0.0
        self.buckets = [0] * (len(BUCKETS) + 1)

    def observe(self, seconds: float) -> None:
        """Record one duration."""
        self.count += 1
        self.sum += seconds
        self.buckets[bisect_left(BUCKETS, seconds)] += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """Return ``(le, count)`` pairs as Prometheus wants them, ending with ``+Inf``."""
        pairs: list[tuple[str, int]] = []
        total = 0
        for bound, count in zip((*map(repr, BUCKETS), "+Inf"), self.buckets, strict=True):
            total += count
            pairs.append((bound, total))
        return pairs


class CommandTimings:
    """One :class:`Histogram` per protocol verb."""

    __slots__ = ("verbs",)

    def __init__(self) -> None:
        self.verbs: dict[str, Histogram] = {}

    def observe(self, verb: str, seconds: float) -> None:
        """Record one command of ``verb`` that took ``seconds``."""
        histogram = self.verbs.get(verb)
        if histogram is None:
            histogram = self.verbs[verb] = Histogram()
        histogram.observe(seconds)
