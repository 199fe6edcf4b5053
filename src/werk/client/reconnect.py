"""The worker's connections to the server, and what it logs about outages.

Every processor, the heartbeat and the reservation keeper open their own connection through
one :class:`Connector`. When the server goes away they all notice; the connector turns that
into one warning per outage (``lost the server ...``, or ``cannot reach the server ...``
while no connection ever succeeded) and one info line when the first
connection succeeds again (``reconnected to ... after 4.1s``). The individual retries are
logged at debug level. A connection made before the latest outage began that fails only
later (a job ran on its processor meanwhile, or the heartbeat was waiting) belongs to that
outage, already reported: it is logged at debug level and does not open a new one.
"""

from __future__ import annotations

import logging
import time

from werk.client.backoff import backoff_delays
from werk.client.connection import CONNECTION_ERRORS, AsyncConnection, NotWorkPortError
from werk.client.state import WorkerHost, wait_event
from werk.errors import AuthenticationError

log = logging.getLogger("werk.worker")


class GiveUpError(Exception):
    """The worker is past its shutdown deadline and stopped reconnecting."""


class Connector:
    """Opens consumer connections for one worker and tracks outages.

    Args:
        worker: whose address, identity, timeout and ``give_up`` event to use.
    """

    def __init__(self, worker: WorkerHost) -> None:
        self.worker = worker
        self.outage_since: float | None = None
        """``time.monotonic()`` when the current outage began, or ``None``."""
        self.last_outage: float | None = None
        """``time.monotonic()`` when the latest outage began (kept after reconnecting)."""
        self.outages = 0
        self.failed = False
        """Whether a fatal connection error (wrong password, not a work port) was logged."""
        self.reached = False
        """Whether a connection ever succeeded (before that, an outage is "cannot reach")."""

    def lost(self, what: str, exc: BaseException, conn: AsyncConnection | None = None) -> None:
        """Record that a connection failed (``what`` names its user, for debug logs).

        ``conn`` is the connection that failed, if one was open: when it was made before the
        latest outage began, its failure is a late sign of that outage, not a new one.
        """
        stale = conn is not None and self.last_outage is not None and conn.opened < self.last_outage
        if self.outage_since is None and not stale:
            self.outage_since = self.last_outage = time.monotonic()
            self.outages += 1
            if not self.worker.stopping:
                log.warning(
                    "%s the server %s (%s: %s); %s",
                    "lost" if self.reached else "cannot reach",
                    self.worker.address.url(),
                    type(exc).__name__,
                    exc,
                    "reconnecting" if self.reached else "retrying",
                )
        log.debug("%s: connection failed: %s", what, exc)

    def _fatal(self, exc: Exception) -> None:
        """Log, once and at once (before the worker's "stopping"), why it cannot go on."""
        if not self.failed:
            self.failed = True
            log.error("%s; stopping", exc)

    def _reached(self) -> None:
        self.reached = True
        if self.outage_since is not None:
            down = time.monotonic() - self.outage_since
            self.outage_since = None
            log.info("reconnected to %s after %.1fs", self.worker.address.url(), down)

    async def connect(self, what: str) -> AsyncConnection:
        """Open a connection, retrying with backoff until the worker gives up.

        Raises:
            AuthenticationError: the password is wrong (retrying cannot help); its message
                names the server.
            NotWorkPortError: the port is an HTTP server, not a work port.
            GiveUpError: the worker's ``give_up`` was set before a connection was made.
        """
        worker = self.worker
        delays = backoff_delays(0.05, 5.0)
        while not worker.give_up.is_set():
            try:
                conn = await AsyncConnection.open(worker.address, worker.identity, worker.timeout)
            except AuthenticationError as exc:  # its message names the server
                self._fatal(exc)
                raise
            except NotWorkPortError as exc:
                self._fatal(exc)
                raise
            except CONNECTION_ERRORS as exc:
                self.lost(what, exc)
                await wait_event(worker.give_up, next(delays))
            else:
                self._reached()
                return conn
        raise GiveUpError("stopped reconnecting at the shutdown deadline")
