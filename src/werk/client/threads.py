"""Threads for plain (non-async) job functions, with one hand-off each way.

A ``ThreadPoolExecutor`` behind ``run_in_executor`` costs a work item, a concurrent future
and a chained asyncio future per call; for short jobs that overhead is a large share of a
worker's CPU. Here a job goes to an idle thread through one queue, and its outcome comes
back with one ``call_soon_threadsafe``. The timeout of a job registered with
``interrupt=True`` raises an exception inside its function (:mod:`werk.client.timelimit`);
the runner's guard keeps it out of this loop.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Item = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class JobThreads:
    """A fixed set of daemon threads running plain functions for the event loop.

    Args:
        count: how many functions may run at once.
        name: the threads' name prefix.
    """

    def __init__(self, count: int, name: str = "werk-job") -> None:
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def run(self, func: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run ``func(*args)`` on a thread; return a future of the loop that resolves to
        its result (or raises its exception). Call from the event loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((loop, future, func, args))
        return future

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            loop, future, func, args = item
            result: Any = None
            error: BaseException | None = None
            try:
                result = func(*args)
            except BaseException as exc:  # handed to the awaiting coroutine
                error = exc
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:  # the loop is closed: nobody waits any more
                return

    def shutdown(self) -> None:
        """Let every thread end once it is idle (running functions are not interrupted)."""
        for _ in self._threads:
            self._queue.put(None)
