"""What the worker's parts see of the worker: its states and two protocols.

The worker (:mod:`werk.client.worker`) builds processors, a runner and calls middleware;
they in turn read the worker's state. To keep imports pointing one way (worker → processor →
runner → middleware → state), those parts depend on the protocols here, never on the
:class:`~werk.client.worker.Worker` class itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from werk.client.proto import Call, Identity
from werk.client.url import ServerAddress

RUNNING, QUIET, STOPPING = "running", "quiet", "terminate"
"""A worker's states, in the only order they move in (the protocol's ``current_state``)."""


async def wait_event(event: asyncio.Event, timeout: float | None) -> None:
    """Wait until ``event`` is set or ``timeout`` seconds (``None``: no limit) pass.

    A cancellation always goes through. Not ``asyncio.wait_for``: on Python 3.11 it
    swallows a cancellation that arrives as the event is set, so a loop waiting this way
    (the heartbeat) would never end once the worker cancels it right after a stop.
    """
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        pass


class WorkerInfo(Protocol):
    """The worker as middleware hooks (``on_start``/``on_stop``) see it."""

    @property
    def wid(self) -> str:
        """The worker's id, as sent in HELLO and BEAT."""

    @property
    def labels(self) -> Sequence[str]:
        """Labels shown on the server's Busy page."""

    @property
    def concurrency(self) -> int:
        """How many jobs run at once."""

    @property
    def state(self) -> str:
        """``running``, ``quiet`` or ``terminate``."""

    @property
    def address(self) -> ServerAddress:
        """The server this worker connects to."""


class WorkerHost(WorkerInfo, Protocol):
    """The worker as its processors and heartbeat see it (internal)."""

    abandoned: int
    shutdown_timeout: float
    heartbeat_interval: float
    timeout: float

    @property
    def give_up(self) -> asyncio.Event:
        """Set once the shutdown deadline passed: stop reconnecting."""

    @property
    def identity(self) -> Identity:
        """What the worker's connections say in HELLO."""

    @property
    def fetching(self) -> bool:
        """Whether processors should FETCH."""

    @property
    def stopping(self) -> bool:
        """Whether the shutdown has begun."""

    @property
    def announced_state(self) -> str | None:
        """The ``current_state`` the next BEAT announces."""

    def fetch_call(self) -> Call[Any]:
        """The FETCH for the next job."""

    def rss_kb(self) -> int | None:
        """Resident memory in KiB, if known."""

    async def wait_state_change(self, timeout: float | None = None) -> None:
        """Wait until quiet/stop is requested, or ``timeout`` seconds pass."""

    def obey(self, state: str | None) -> None:
        """Apply a state the server asked for in a BEAT reply."""

    def stop(self, *, force: bool = False) -> None:
        """Begin the graceful shutdown (``force``: without waiting for running jobs)."""
