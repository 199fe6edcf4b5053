"""Keeping the reservations of long jobs alive while they run.

A FETCHed job is reserved for its ``reserve_for`` seconds (1800 when unset); past that the
server hands it to another FETCH, so a longer job would run twice. While a job runs, the
:class:`ReservationKeeper` renews its reservation each time half of it has passed, with
``TRACK SET {"jid": ..., "reserve_until": now + reserve_for}``. Werk accepts that for every
job; Faktory Enterprise documents it (job tracking). Due renewals go out together, pipelined,
on the keeper's own connection, opened the first time a job runs that long. The keeper finds
the running jobs itself, every :data:`POLL` seconds, in the processors (a job first seen is
taken to have started at the previous look), so a short job costs the worker nothing here.

A server without TRACK (Faktory's open-source edition) answers with an error: the keeper logs
one warning and from then on only logs, with its jid, each job that outlives its
reservation. On such a server push long jobs with a ``reserve_for`` above their longest run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from werk.client.client import CALLS
from werk.client.connection import CONNECTION_ERRORS, AsyncConnection
from werk.client.proto import Call
from werk.client.reconnect import Connector, GiveUpError
from werk.errors import CommandError
from werk.job import format_time

log = logging.getLogger("werk.worker")

DEFAULT_RESERVE_FOR = 1800
"""Faktory's reservation when a job gives no ``reserve_for``."""
POLL = 0.5
"""Seconds between the keeper's looks at the running jobs."""


@dataclass(slots=True)
class Lease:
    """One running job's reservation as the worker sees it (``time.monotonic()`` times)."""

    jid: str
    jobtype: str
    reserve_for: float
    expires: float
    renew_at: float
    warned: bool = False


def reserve_for(job: dict[str, Any]) -> float:
    """The seconds a job's reservation lasts: its ``reserve_for``, else 1800."""
    value = job.get("reserve_for")
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return float(DEFAULT_RESERVE_FOR)


def _unsupported(exc: CommandError) -> bool:
    text = str(exc).lower()
    return "unknown command" in text or "no such command" in text or "unknown verb" in text


class ReservationKeeper:
    """Renews the reservations of the worker's running jobs (see the module docstring).

    Args:
        connector: opens the keeper's connection.
        running: returns the payloads of the jobs running now.
    """

    def __init__(
        self, connector: Connector, running: Callable[[], Iterable[dict[str, Any]]]
    ) -> None:
        self.connector = connector
        self.running = running
        self.leases: dict[str, Lease] = {}
        """The running jobs the keeper has seen, by jid."""
        self.supported = True
        """Whether the server accepted TRACK SET (set to ``False`` on the first refusal)."""
        self.renewals = 0
        self._conn: AsyncConnection | None = None

    async def run(self) -> None:
        """Renew due reservations every :data:`POLL` seconds until cancelled."""
        try:
            looked = time.monotonic()
            while True:
                await asyncio.sleep(POLL)
                now = time.monotonic()
                self.look(now, looked)
                looked = now
                if self.leases:
                    await self._renew_due(now)
        finally:
            if self._conn is not None:
                self._conn.close()

    def look(self, now: float, previous: float) -> None:
        """Update :attr:`leases` to the jobs running at ``now``; a job not seen at the
        ``previous`` look started after it, so its reservation is taken to run from then."""
        leases: dict[str, Lease] = {}
        for job in self.running():
            jid = job["jid"]
            lease = self.leases.get(jid)
            if lease is None:
                length = reserve_for(job)
                jobtype = str(job.get("jobtype"))
                lease = Lease(jid, jobtype, length, previous + length, previous + length / 2)
            leases[jid] = lease
        self.leases = leases

    async def _renew_due(self, now: float) -> None:
        due = [lease for lease in self.leases.values() if lease.renew_at <= now]
        if not due:
            return
        if not self.supported:
            for lease in due:
                self._watch_expiry(lease, now)
            return
        calls: list[Call[Any]] = []
        for lease in due:
            until = format_time(time.time() + lease.reserve_for)
            calls.append(CALLS.track_set({"jid": lease.jid, "reserve_until": until}))
            lease.renew_at = now + lease.reserve_for / 2
        try:
            if self._conn is None or self._conn.closed:
                self._conn = await self.connector.connect("reservation keeper")
            results = await self._conn.pipeline(calls)
        except CONNECTION_ERRORS as exc:
            self.connector.lost("reservation keeper", exc, self._conn)
            for lease in due:  # retry soon, while the reservation still holds
                lease.renew_at = min(lease.expires, now + 1.0)
            return
        except GiveUpError:
            return
        for lease, result in zip(due, results, strict=True):
            self._settle(lease, result, now)

    def _settle(self, lease: Lease, result: Any, now: float) -> None:
        if not isinstance(result, CommandError):
            lease.expires = now + lease.reserve_for
            self.renewals += 1
            log.debug(
                "job %s %s: reservation renewed for %.0fs",
                lease.jid,
                lease.jobtype,
                lease.reserve_for,
                extra={"jid": lease.jid, "jobtype": lease.jobtype},
            )
        elif _unsupported(result):
            self.supported = False
            log.warning(
                "the server does not support TRACK SET (%s): reservations cannot be renewed, "
                "so a job running longer than its reserve_for may be run again",
                result,
            )
            self._watch_expiry(lease, now)
        else:
            log.warning(
                "job %s %s: could not renew its reservation: %s",
                lease.jid,
                lease.jobtype,
                result,
                extra={"jid": lease.jid, "jobtype": lease.jobtype},
            )
            self._watch_expiry(lease, now)

    def _watch_expiry(self, lease: Lease, now: float) -> None:
        if now < lease.expires:
            lease.renew_at = lease.expires
            return
        lease.renew_at = float("inf")
        if not lease.warned:
            lease.warned = True
            log.warning(
                "job %s %s: still running after its reservation of %.0fs expired; "
                "the server may hand it to another worker",
                lease.jid,
                lease.jobtype,
                lease.reserve_for,
                extra={"jid": lease.jid, "jobtype": lease.jobtype},
            )
