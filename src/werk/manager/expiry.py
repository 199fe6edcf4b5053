"""Expiring jobs (Faktory Enterprise): a job past its ``custom.expires_at`` never runs.

``custom.expires_in`` (seconds) is turned into ``expires_at`` (RFC 3339) at push. As in
Faktory, an expired job stays where it is until a worker fetches it; the fetch then drops
it instead of handing it out (the reservation is settled through the store) and counts it
under :data:`STATS_KEY`, which INFO shows as ``faktory.tasks.Expired.size``. Features that
follow a job to its end (results, chains, batches, tracking) hear of it through their
``ended`` hook (the manager's one place for jobs that end without a worker): its result
fails with errtype ``Expired``, its chain ends, its batch counts it as failed.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from werk.errors import CommandError
from werk.job import format_time, parse_time
from werk.manager.middleware import Ending, Host, Middleware
from werk.storage.base import Reservation, Store

log = logging.getLogger("werk.expiry")

STATS_KEY = "stats:expired"
COUNTER = "expired"
MARKER = b'"expires_at"'
"""Jobs whose body lacks this byte string cannot expire (the cheap check at fetch)."""


MAX_EXPIRES_IN = 100 * 365 * 86400
"""Seconds; beyond this (or non-finite) ``expires_in`` cannot be a timestamp."""


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CommandError("expires_in must be a number of seconds")
    if not abs(value) < MAX_EXPIRES_IN:  # also refuses NaN and infinities
        raise CommandError("expires_in is out of range")
    return float(value)


def expiry(job: dict[str, Any], now: float) -> str | None:
    """Return the ``custom.expires_at`` a job pushed now will have (from ``expires_in``
    when it has one), or ``None``; the job is not changed.

    Raises:
        CommandError: either field has the wrong type or format.
    """
    custom = job.get("custom")
    if not isinstance(custom, dict):
        return None
    seconds = custom.get("expires_in")
    if seconds is not None:
        return format_time(now + _number(seconds))
    at = custom.get("expires_at")
    if at is None:
        return None
    if not isinstance(at, str):
        raise CommandError("expires_at must be an RFC 3339 timestamp")
    try:
        parse_time(at)
    except ValueError as exc:
        raise CommandError(f"invalid timestamp for 'expires_at': \"{at}\": {exc}") from exc
    return at


def normalize(job: dict[str, Any], now: float) -> None:
    """Turn ``custom.expires_in`` into ``custom.expires_at`` after :func:`expiry`'s checks.

    Raises:
        CommandError: either field has the wrong type or format.
    """
    at = expiry(job, now)
    custom = job.get("custom")
    if isinstance(custom, dict):
        custom.pop("expires_in", None)
        if at is not None:
            custom["expires_at"] = at


def expires_at(body: bytes) -> float | None:
    """Return when the job in ``body`` expires (Unix seconds), or ``None``."""
    if MARKER not in body:
        return None
    custom = json.loads(body).get("custom")
    at = custom.get("expires_at") if isinstance(custom, dict) else None
    if not isinstance(at, str):
        return None
    try:
        return parse_time(at)
    except ValueError:
        return None


async def expired_count(store: Store) -> int:
    """Return how many expired jobs were dropped since the last FLUSH."""
    counts = await store.add_counts(STATS_KEY, {})
    return counts.get(COUNTER, 0)


class ExpiringJobs(Middleware):
    """The expiring-jobs middleware.

    Args:
        store: the server's store.
    """

    reads_custom_only = True

    def __init__(self, store: Store) -> None:
        self.store = store
        self.manager: Host | None = None

    def attach(self, manager: Host) -> None:
        """Keep the manager, which tells the other features of each dropped job."""
        self.manager = manager

    async def check_push(self, job: dict[str, Any], now: float) -> None:
        """Refuse a malformed ``expires_in`` or ``expires_at`` (see :func:`expiry`)."""
        expiry(job, now)

    async def push(self, job: dict[str, Any], now: float) -> None:
        """Turn ``expires_in`` into ``expires_at``; refuse a malformed one."""
        normalize(job, now)

    async def fetched(self, reservation: Reservation, now: float) -> bool:
        """Drop a job whose expiry has passed: settle its reservation and count it."""
        deadline = expires_at(reservation.entry.body)
        if deadline is None or deadline > now:
            return True
        jid = reservation.entry.jid
        if await self.store.ack(jid, now) is not None:
            await self.store.add_counts(STATS_KEY, {COUNTER: 1})
            log.info("Halt: job %s expired", jid)
            if self.manager is not None:
                queue = reservation.entry.queue
                await self.manager.ended(reservation.entry, Ending("expired", f"queue {queue}"))
        return False
