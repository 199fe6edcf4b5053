"""Which queues a worker fetches from, and in what order for each FETCH.

Strict order (no weights given) sends the queues as
listed: the server serves the first non-empty one. Weighted order draws a fresh order for
every FETCH, each queue ahead of the others with odds proportional to its weight (the
Ruby and Go workers' ``-q name,weight``).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from werk.job import QUEUE_NAME, QUEUE_RULE


def parse_queue(spec: str | tuple[str, int]) -> tuple[str, int]:
    """Parse ``"name"``, ``"name,weight"`` or ``(name, weight)`` into ``(name, weight)``.

    The name follows the server's rule (:data:`werk.job.QUEUE_NAME`, Faktory's), so a
    worker never fetches from a queue no job can be pushed to; a weight is a whole number
    of 1 or more (0 in the result: none given).

    Raises:
        ValueError: the name breaks the rule, or the weight is not a whole number >= 1;
            the message quotes the spec and says the rule.
    """
    if isinstance(spec, tuple):
        name, weight = spec
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise ValueError(f"queue weight must be a whole number (0: none) in {spec!r}")
    else:
        name, comma, raw = spec.partition(",")
        if comma and not (raw.isascii() and raw.isdigit() and int(raw) >= 1):
            raise ValueError(
                f"queue weight must be a whole number of 1 or more in {spec!r}, not {raw!r}"
            )
        weight = int(raw) if comma else 0
    if not isinstance(name, str) or not QUEUE_NAME.match(name):
        where = "" if spec == name else f" in {spec!r}"
        raise ValueError(f"queue name {name!r}{where}: {QUEUE_RULE}")
    return name, weight


class QueueOrder:
    """The FETCH queue list: fixed for strict order, redrawn per call when weighted.

    Args:
        queues: queue specs as accepted by :func:`parse_queue`; a weight on any of them
            makes the order weighted (queues without one weigh 1).
        rng: the random source for weighted order.
    """

    def __init__(
        self, queues: Iterable[str | tuple[str, int]], rng: random.Random | None = None
    ) -> None:
        parsed = [parse_queue(spec) for spec in queues]
        if not parsed:
            raise ValueError("a worker needs at least one queue")
        self.names: tuple[str, ...] = tuple(name for name, _ in parsed)
        self.weighted = any(weight > 0 for _, weight in parsed)
        self.weights: tuple[int, ...] = tuple(max(weight, 1) for _, weight in parsed)
        self._rng = rng or random.Random()

    def order(self) -> Sequence[str]:
        """Return the queue names for the next FETCH."""
        if not self.weighted:
            return self.names
        # Efraimidis-Spirakis: sorting by u**(1/w) draws a weighted order without replacement.
        rng = self._rng
        keys = [rng.random() ** (1.0 / w) for w in self.weights]
        return [name for _, name in sorted(zip(keys, self.names, strict=True), reverse=True)]


def declared_queues(declared: Iterable[str]) -> QueueOrder:
    """The queues a worker fetches when none were given: ``default`` plus ``declared``.

    ``declared`` are the queues of the tasks the worker includes (duplicates ignored). With
    only ``default`` the order is strict; with more, every queue weighs 1, so each FETCH
    draws a fresh order and no queue starves another. A Werk rule (Celery's workers serve the
    queues their tasks are routed to); give queues explicitly to choose an order.
    """
    names = list(dict.fromkeys(["default", *declared]))
    if len(names) == 1:
        return QueueOrder(names)
    return QueueOrder((name, 1) for name in names)
