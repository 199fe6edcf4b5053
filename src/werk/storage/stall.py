"""Noticing a store that stops answering: a frozen Redis or PostgreSQL says nothing.

A store whose process is stopped (``SIGSTOP``, a VM paused, a disk that hangs) keeps its
connections open: no error comes, calls just wait. :class:`StallWatch` counts the calls in
flight; when some have waited :data:`STALL_AFTER` seconds while none finished, it logs one
warning for the whole outage, and one line when a call succeeds again.
"""

from __future__ import annotations

import asyncio
import logging
import time

log = logging.getLogger("werk.storage")

STALL_AFTER = 5.0
"""Seconds of store calls waiting with none finished before the warning."""


class StallWatch:
    """Counts one backend's calls in flight (see the module doc).

    Args:
        name: the backend as log lines name it (``redis``, ``postgres``).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.after = STALL_AFTER
        self.stores = 0
        """How many stores of this backend are open: only their calls are watched (a store
        that cannot open says why itself, at once or after its retries)."""
        self.waiting = 0
        self.progress = time.monotonic()
        """When a call last finished (or started, while none was waiting)."""
        self.stalled_since: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def begin(self) -> bool:
        """A call starts (on the running loop); return whether it is watched (then call
        :meth:`end` when it finishes)."""
        if self.stores <= 0:
            return False
        if self.waiting <= 0:
            self.waiting = 0
            self.progress = time.monotonic()
        self.waiting += 1
        loop = asyncio.get_running_loop()
        if self._timer is None or self._loop is not loop:  # a new loop: tests make one each
            self._loop = loop
            self._arm(self.after)
        return True

    def end(self, ok: bool) -> None:
        """A call finished: answered (``ok``) or failed."""
        self.waiting -= 1
        now = time.monotonic()
        self.progress = now
        if ok and self.stalled_since is not None:
            log.warning("%s: answering again after %.0fs", self.name, now - self.stalled_since)
            self.stalled_since = None

    def _arm(self, delay: float) -> None:
        assert self._loop is not None
        self._timer = self._loop.call_later(delay, self._check)

    def _check(self) -> None:
        self._timer = None
        if self.waiting <= 0:
            return
        quiet = time.monotonic() - self.progress
        if quiet >= self.after and self.stalled_since is None:
            self.stalled_since = self.progress
            log.warning(
                "%s: no reply for %.0fs (%d calls waiting): is it running, reachable, not"
                " frozen? Waiting for it",
                self.name,
                quiet,
                self.waiting,
            )
        self._arm(max(self.after - quiet, 0.5) if self.stalled_since is None else 1.0)
