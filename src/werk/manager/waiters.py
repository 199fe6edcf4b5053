"""Blocked FETCHes waiting for a job, woken when one of their queues gets work.

A waiter listens on several queues at once; the store's availability callback wakes every
waiter on the named queues. Waking is a hint: the woken FETCH looks again, and may find
that another took the job first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager


class Waiters:
    """Futures of blocked FETCHes, indexed by queue name."""

    def __init__(self) -> None:
        self._by_queue: dict[str, set[asyncio.Future[None]]] = {}

    @contextmanager
    def listen(self, queues: Sequence[str]) -> Iterator[asyncio.Future[None]]:
        """Register a future woken when any of ``queues`` may have a job; unregister on exit."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for name in queues:
            self._by_queue.setdefault(name, set()).add(future)
        try:
            yield future
        finally:
            for name in queues:
                waiting = self._by_queue.get(name)
                if waiting is not None:
                    waiting.discard(future)
                    if not waiting:
                        del self._by_queue[name]

    def wake(self, queues: Iterable[str]) -> None:
        """Wake every waiter listening on one of ``queues``."""
        for name in queues:
            for future in self._by_queue.get(name, ()):
                if not future.done():
                    future.set_result(None)

    def waiting(self, queues: Iterable[str]) -> bool:
        """Return whether a FETCH is waiting on one of ``queues``."""
        by_queue = self._by_queue
        return any(name in by_queue for name in queues)

    def wake_all(self) -> None:
        """Wake every waiter (after a resume of all queues, say)."""
        self.wake(list(self._by_queue))

    def count(self) -> int:
        """Return how many distinct FETCHes are waiting."""
        return len({f for waiting in self._by_queue.values() for f in waiting})
