"""Middleware: hooks around push, fetch, ack and fail, for the features built on the core.

Unique jobs, expiring jobs, batches, tracking and throttles are middleware (Faktory's
design, dramatiq's no-op base class): each overrides the hooks it needs. Hooks run in
registration order. A hook may raise :class:`~werk.errors.CommandError` (for instance
``NotUniqueError``) to refuse a push; that error goes to the client. A job that leaves
without a worker's ACK or FAIL (deleted, killed, expired) reaches the ``ended`` hook.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from werk.storage.base import Entry, Placement, Reservation

EndingKind = Literal["deleted", "killed", "expired"]

ERRTYPES: dict[EndingKind, str] = {"deleted": "Deleted", "killed": "Killed", "expired": "Expired"}
"""The errtype a job's result gets for each way it ended without a worker's word (Werk's)."""


@dataclass(frozen=True, slots=True)
class Ending:
    """How a job left the server without a worker's ACK or FAIL (Werk's rule: the features
    waiting on it hear of it through :meth:`Middleware.ended`).

    ``kind``: ``deleted`` (MUTATE ``discard``/``clear``, QUEUE REMOVE, the web UI's delete
    and clear), ``killed`` (MUTATE ``kill``, the web UI's kill: moved to the dead set) or
    ``expired`` (dropped at fetch, past its ``expires_at``). ``where``: the place it left,
    as ``queue default`` or ``the retries set``.
    """

    kind: EndingKind
    where: str

    @property
    def errtype(self) -> str:
        """``Deleted``, ``Killed`` or ``Expired``."""
        return ERRTYPES[self.kind]

    @property
    def outcome(self) -> str:
        """What happened, after the job's name: ``was deleted from queue default``."""
        if self.kind == "expired":
            return "expired before it ran"
        return f"was {self.kind} from {self.where}"


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


class Host(Pusher, Protocol):
    """What a middleware sees of the manager that runs it: its push path, and the one place
    that tells every feature of a job that ended without a worker's word."""

    async def ended(self, entry: Entry, ending: Ending) -> None:
        """Call the ``ended`` hook of every middleware that hears of ``entry``."""


class Middleware:
    """The no-op base class; override what a feature needs."""

    def attach(self, manager: Host) -> None:
        """Called once by the manager that runs this middleware (for a feature that pushes
        jobs through the manager's own push path, as chains do, or reports jobs it ends,
        as expiry does)."""

    async def check_push(self, job: dict[str, Any], now: float) -> None:
        """Refuse a validated job that breaks this feature's push rules, changing nothing
        and keeping nothing (no lock, no record, no count). The feature's ``push`` applies
        it too; chains apply it to the steps they will push later."""

    reads_custom_only: bool = False
    """Whether :meth:`push` and :meth:`storing` only act on what jobs carry in ``custom``: the
    manager then skips ``push`` for a job with no (or an empty) ``custom``, as most are, and
    ``storing`` when no job of the PUSH or PUSHB has one."""

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

    def hears_ended(self, body: bytes) -> bool:
        """Return whether :meth:`ended` must hear of the job in ``body`` when it ends
        without a worker's word (a cheap look at the bytes); the manager reports such a job
        only when its store call really took it."""
        return False

    async def ended(self, entry: Entry, ending: Ending, now: float) -> None:
        """Called after a job left without a worker's ACK or FAIL (see :class:`Ending`):
        deleted unrun, killed into the dead set (not when it was dead already) or dropped
        because it expired. A job that died or was discarded by a FAIL, or whose
        reservation expired, reaches :meth:`failed` instead."""
