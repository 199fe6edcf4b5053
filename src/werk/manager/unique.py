"""Unique jobs (Faktory Enterprise): refuse a push while an equal job holds the lock.

A job opts in with ``custom.unique_for`` (seconds). Equal means same jobtype, args and
queue, hashed from canonical JSON into the lock key ``unique:<sha256>``; the lock's owner is
the jid, so re-pushing the *same* job (a client retrying after a lost reply) is accepted.
The lock lasts ``unique_for`` seconds (plus the delay of a scheduled job) and is released
at ACK (``unique_until: success``, the default) or at fetch (``start``). A failed job
waiting for its retry keeps the lock. Every step is one atomic ``claim``/``release`` of the
store, so the rule holds across servers sharing one Redis.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from werk.errors import CommandError, NotUniqueError
from werk.job import scheduled_at
from werk.manager.middleware import Middleware
from werk.storage.base import Reservation, Store

PREFIX = "unique:"
MAX_UNIQUE_FOR = 10 * 365 * 86400
"""The longest lock a job may ask for, in seconds."""
MARKER = b'"unique_for"'
"""Jobs whose body lacks this byte string are not unique jobs (the cheap check)."""


def unique_key(job: dict[str, Any]) -> str:
    """Return the lock key of a job: a digest of its jobtype, args and queue.

    Args:
        job: a validated job (``queue`` filled in).
    """
    canonical = json.dumps(
        [job["jobtype"], job["args"], job["queue"]],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return PREFIX + hashlib.sha256(canonical.encode()).hexdigest()


def unique_for(job: dict[str, Any]) -> float | None:
    """Return a job's ``custom.unique_for`` in seconds, or ``None`` when it is not unique.

    Raises:
        CommandError: ``unique_for`` or ``unique_until`` has the wrong type or value.
    """
    custom = job.get("custom")
    if not isinstance(custom, dict) or "unique_for" not in custom:
        return None
    seconds = custom["unique_for"]
    if seconds is None:
        return None
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or seconds > MAX_UNIQUE_FOR
    ):
        raise CommandError("unique_for must be a number of seconds")
    until = custom.get("unique_until") or "success"
    if until not in ("success", "start"):
        raise CommandError('unique_until must be "success" or "start"')
    return float(seconds) if seconds > 0 else None


def _decode(reservation: Reservation) -> dict[str, Any] | None:
    if MARKER not in reservation.entry.body:
        return None
    job: dict[str, Any] = json.loads(reservation.entry.body)
    return job if isinstance(job.get("custom"), dict) else None


class UniqueJobs(Middleware):
    """The unique-jobs middleware.

    Args:
        store: the server's store (its ``claim``/``release`` locks do the work).
    """

    reads_custom_only = True

    def __init__(self, store: Store) -> None:
        self.store = store

    async def check_push(self, job: dict[str, Any], now: float) -> None:
        """Refuse a malformed ``unique_for`` or ``unique_until`` (see :func:`unique_for`);
        no lock is looked at or taken."""
        unique_for(job)

    async def push(self, job: dict[str, Any], now: float) -> None:
        """Take the job's lock, or refuse the push with ``NOTUNIQUE`` (after the rules
        of :meth:`check_push`, which :func:`unique_for` applies)."""
        seconds = unique_for(job)
        if seconds is None:
            return
        due = scheduled_at(job, now)
        ttl = seconds + (due - now if due is not None else 0.0)
        if not await self.store.claim(unique_key(job), job["jid"], ttl, now):
            raise NotUniqueError()

    async def fetched(self, reservation: Reservation, now: float) -> bool:
        """Release the lock of a ``unique_until: start`` job as it starts."""
        job = _decode(reservation)
        if job is not None and job["custom"].get("unique_until") == "start":
            await self.store.release(unique_key(job), reservation.entry.jid)
        return True

    async def acked(self, reservation: Reservation, now: float) -> None:
        """Release the lock of a job that succeeded (if it still holds it)."""
        job = _decode(reservation)
        if job is not None and job["custom"].get("unique_for"):
            await self.store.release(unique_key(job), reservation.entry.jid)
