"""Middleware: hooks around push, fetch, ack and fail, for the features built on the core.

Unique jobs, expiring jobs, batches, tracking and throttles are middleware (Faktory's
design, dramatiq's no-op base class): each overrides the hooks it needs. Hooks run in
registration order. A hook may raise :class:`~werk.errors.CommandError` (for instance
``NotUniqueError``) to refuse a push; that error goes to the client.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from werk.storage.base import Entry, Placement, Reservation


class Pusher(Protocol):
    """What a middleware sees of the manager that runs it: its push path."""

    async def push(self, job: Any) -> None:
        """Store one job as a PUSH does (validation and every push hook included).

        Raises:
            CommandError: the job breaks a rule, or middleware refused it.
        """

    async def check_push(self, job: Any, now: float) -> dict[str, Any]:
        """Apply every rule a PUSH of ``job`` would, changing nothing and keeping nothing
        (no lock taken, no record written, nothing counted); return the validated copy.

        Raises:
            CommandError: with the message its PUSH would give.
        """


class Middleware:
    """The no-op base class; override what a feature needs."""

    def attach(self, manager: Pusher) -> None:
        """Called once by the manager that runs this middleware (for a feature that pushes
        jobs through the manager's own push path, as chains do)."""

    async def check_push(self, job: dict[str, Any], now: float) -> None:
        """Refuse a validated job that breaks this feature's push rules, changing nothing
        and keeping nothing (no lock, no record, no count). The feature's ``push`` applies
        it too; chains apply it to the steps they will push later."""

    async def push(self, job: dict[str, Any], now: float) -> None:
        """Called before a validated job is stored; may change ``job`` or raise to refuse."""

    async def storing(self, jobs: Sequence[dict[str, Any]], now: float) -> None:
        """Called with the validated jobs of one PUSH or PUSHB that every ``push`` hook
        accepted, before they are stored (queued or scheduled). What a hook writes here is
        durable before any worker can fetch them, so whatever a worker's ACK or FAIL writes
        later lands after it (a ``pending`` result record is never written over an
        outcome)."""

    async def fetch(self, queues: Sequence[str], wid: str, now: float) -> Sequence[str]:
        """Called before looking for a job; return the queues that may be fetched from."""
        return queues

    async def fetched(self, reservation: Reservation, now: float) -> bool:
        """Called with a job just reserved. Return ``False`` to withhold it from the worker:
        the hook must then have settled the reservation itself (through the store), and
        the manager looks for another job."""
        return True

    async def acked(self, reservation: Reservation, now: float) -> None:
        """Called after a job was acknowledged."""

    async def returned(self, reservation: Reservation, result: bytes | None, now: float) -> None:
        """Called after every ``acked`` hook, with the JSON value the worker sent in its ACK
        (Werk's results extension; ``None`` when it sent none)."""

    async def failed(
        self, reservation: Reservation, placement: Placement | None, now: float
    ) -> None:
        """Called after a failure (a FAIL, or an expired reservation) was recorded."""

    deleted_glob: str | None = None
    """A Redis-style glob that the body of every job :meth:`hears_deleted` accepts matches
    (it may match more): emptying a whole set then reads only the matching entries, not
    the set (``None``: read the whole set)."""

    def hears_deleted(self, body: bytes) -> bool:
        """Return whether :meth:`deleted` must hear of the job in ``body`` when it is
        deleted unrun (a cheap look at the bytes); the manager deletes such a job alone,
        so that it knows the job was there."""
        return False

    async def deleted(self, entry: Entry, where: str, now: float) -> None:
        """Called after a job was deleted before it ended (Werk's MUTATE ``discard`` on a
        queue, ``discard``/``clear`` on a set, the web UI's delete); ``where`` names the
        place, as ``queue default`` or ``the retries set``."""
