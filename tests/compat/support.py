"""Shared helpers for the third-party client compatibility tests.

Every test here talks to a real ``werk server`` subprocess (the ``werk_server`` fixture from
``tests/conftest.py``) through a real client library. These helpers only poll and summarise;
they never stand in for the server or the clients.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.helpers import Peer, ServerProcess
from werk.protocol.resp import Simple

Info = dict[str, Any]


def rfc3339_in(seconds: float) -> str:
    """Return ``now + seconds`` as a UTC ``isoformat()`` timestamp (``...+00:00``)."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def summary(info: Info) -> dict[str, Any]:
    """Reduce an INFO document to the counters the compat tests assert on.

    Also checks that the two places a set size is reported (``faktory.sets`` and the older
    ``faktory.tasks.<Set>.size`` that node and ruby read) agree.
    """
    faktory = info["faktory"]
    sets = faktory["sets"]
    tasks = faktory["tasks"]
    for name in ("scheduled", "retries", "dead"):
        assert tasks[name.capitalize()]["size"] == sets[name], (name, sets, tasks)
    return {
        "queues": {name: size for name, size in (faktory["queues"] or {}).items() if size},
        "scheduled": sets["scheduled"],
        "retries": sets["retries"],
        "dead": sets["dead"],
        "working": sets["working"],
        "processed": faktory["total_processed"],
        "failures": faktory["total_failures"],
    }


def wait_for_info(
    get_info: Callable[[], Info],
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = 10.0,
    interval: float = 0.05,
) -> dict[str, Any]:
    """Poll INFO (through the caller's client) until ``predicate(summary)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        current = summary(get_info())
        if predicate(current):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"INFO never matched within {timeout}s; last: {current}")
        time.sleep(interval)


def wait_until(probe: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``probe`` until it returns something truthy; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s; last value: {value!r}")
        time.sleep(interval)


def raw_info(server: ServerProcess) -> Info:
    """INFO through the raw test peer (for cross-checking what a client reported)."""
    peer = Peer(server.host, server.port)
    try:
        assert peer.hello() == Simple("OK")
        reply = peer.call("INFO")
        assert isinstance(reply, bytes), reply
        result: Info = json.loads(reply)
        return result
    finally:
        peer.close()


@dataclass
class CaughtThreadError:
    """An exception that escaped a background thread while ``thread_errors`` was active."""

    thread_name: str
    exc: BaseException | None


@contextmanager
def thread_errors() -> Iterator[list[CaughtThreadError]]:
    """Record exceptions escaping background threads instead of letting pytest fail on them.

    Used around client libraries whose own threads can die on shutdown races; the caller must
    assert on what was caught, so nothing is silently ignored.
    """
    caught: list[CaughtThreadError] = []
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        name = args.thread.name if args.thread is not None else "<unknown>"
        caught.append(CaughtThreadError(name, args.exc_value))

    threading.excepthook = hook
    try:
        yield caught
    finally:
        threading.excepthook = previous
