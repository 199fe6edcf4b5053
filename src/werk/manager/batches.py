"""Batches (Faktory Enterprise): groups of jobs with ``complete`` and ``success`` callbacks.

A batch is a record ``batch:<bid>`` (its description, parent, callbacks and whether it is
committed; it expires 30 minutes after creation unless committed) plus atomic counters on
the same key, kept as Sidekiq and Faktory do:

- ``total``: jobs pushed with ``custom.bid``; ``pending``: jobs that have not succeeded
  yet; ``failed``: jobs that failed at least once and have not succeeded since.
- ``children_complete`` / ``children_success``: child batches not yet complete /
  successful (a child is created with ``parent_bid``).
- ``complete_st`` / ``success_st``: 0 nothing yet, 1 callback enqueued, 2 callback done
  (BATCH STATUS shows them as ``""``, ``"1"``, ``"2"``).

A committed batch is *complete* when every job ran at least once (``pending == failed``)
and every child is complete; it *succeeds* when no job is pending, every child succeeded,
and its complete callback (if any) succeeded: Enterprise's ordering rule. Each transition
is taken by exactly one caller, on any server, through a store ``claim``.
"""

from __future__ import annotations

import copy
import json
import secrets
import uuid
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from werk.errors import CommandError
from werk.job import check_later, check_queue_name, format_time, new_jid, validate
from werk.manager.entries import make_entry
from werk.manager.middleware import Ending, Middleware
from werk.storage.base import Entry, Placement, Reservation, Store

if TYPE_CHECKING:
    from werk.manager.manager import Manager

KEY = "batch:"
OPEN_TTL = 30 * 60.0
"""An uncommitted batch vanishes this long after it was created (Faktory's rule)."""
COMMITTED_TTL = 30 * 86400.0
"""A committed batch's data is kept this long after its (last) commit."""
MEMBER = b'"bid"'
CALLBACK = b'"_cb"'
Callback = Literal["complete", "success"]
CALLBACKS: tuple[Callback, ...] = ("complete", "success")


def new_bid() -> str:
    """Return a new batch id: ``b-`` and a random URL-safe id."""
    return "b-" + secrets.token_urlsafe(10)


@dataclass
class Batch:
    """A batch's definition, as kept in its record."""

    bid: str
    created_at: float
    parent_bid: str = ""
    description: str = ""
    callbacks: dict[str, dict[str, Any]] = field(default_factory=dict)
    committed: bool = False

    def encode(self) -> bytes:
        """Return the record's bytes."""
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> Batch:
        """Rebuild a batch from its record's bytes."""
        return cls(**json.loads(data))


def _keepable(bid: str) -> bool:
    # Bids are made by new_bid: an empty one or one holding NUL names no batch, and
    # PostgreSQL refuses NUL in a key (it answered -ERR storage error).
    return bool(bid) and "\x00" not in bid


def _callback_spec(spec: dict[str, Any], name: str, now: float) -> dict[str, Any] | None:
    job = spec.get(name)
    if job is None or job == {} or job == "":
        return None
    if not isinstance(job, dict):
        raise CommandError(f"batch {name} callback must be a job object")
    check_later(job, now)
    return job


def _job(entry: Entry, marker: bytes) -> dict[str, Any] | None:
    if marker not in entry.body:
        return None
    job: dict[str, Any] = json.loads(entry.body)
    return job if isinstance(job.get("custom"), dict) else None


def _st(counts: dict[str, int], name: str) -> str:
    value = counts.get(name, 0)
    return str(value) if value > 0 else ""


class Batches(Middleware):
    """The batch subsystem: BATCH commands and the middleware that counts batch jobs.

    Args:
        store: the server's store; every bit of batch state lives there.
    """

    reads_custom_only = True

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- commands ------------------------------------------------------------------

    async def new(self, spec: Any, now: float) -> str:
        """Create a batch from BATCH NEW's JSON; return its bid.

        Raises:
            CommandError: the JSON is not a valid batch, or its parent does not exist.
        """
        if not isinstance(spec, dict):
            raise CommandError("invalid batch: expected a JSON object")
        if spec.get("bid"):
            raise CommandError("a new batch must not have a bid")
        callbacks: dict[str, dict[str, Any]] = {}
        for name in CALLBACKS:
            job = _callback_spec(spec, name, now)
            if job is not None:
                callbacks[name] = job
        if not callbacks:
            raise CommandError("a batch needs a success or complete callback")
        parent, description = spec.get("parent_bid") or "", spec.get("description") or ""
        if not isinstance(parent, str) or not isinstance(description, str):
            raise CommandError("invalid batch: parent_bid and description must be strings")
        if parent:
            await self.get(parent, now)
        batch = Batch(new_bid(), now, parent, description, callbacks)
        await self.store.put_record(KEY + batch.bid, batch.encode(), OPEN_TTL, now)
        if parent:
            await self.store.add_counts(
                KEY + parent, {"children_complete": 1, "children_success": 1}
            )
        return batch.bid

    async def get(self, bid: str, now: float) -> Batch:
        """Return a batch's definition.

        Raises:
            CommandError: ``no such batch <bid>``.
        """
        data = await self.store.get_record(KEY + bid, now) if _keepable(bid) else None
        if data is None:
            raise CommandError(f"no such batch {bid}")
        return Batch.decode(data)

    async def open(self, bid: str, now: float) -> str:
        """Reopen a batch to add jobs (allowed even after commit); return its bid."""
        return (await self.get(bid, now)).bid

    async def commit(self, bid: str, now: float) -> None:
        """Commit a batch: from now on its callbacks fire once its jobs are done."""
        batch = await self.get(bid, now)
        batch.committed = True
        await self.store.put_record(KEY + bid, batch.encode(), COMMITTED_TTL, now)
        await self._settle(bid, now)

    async def status(self, bid: str, now: float) -> dict[str, Any]:
        """Return BATCH STATUS's document for a batch."""
        batch = await self.get(bid, now)
        counts = await self.store.add_counts(KEY + bid, {})
        doc: dict[str, Any] = {"bid": bid}
        if batch.parent_bid:
            doc["parent_bid"] = batch.parent_bid
        if batch.description:
            doc["description"] = batch.description
        doc["created_at"] = format_time(batch.created_at)
        for name in ("total", "pending", "failed"):
            doc[name] = counts.get(name, 0)
        doc["complete_st"] = _st(counts, "complete_st")
        doc["success_st"] = _st(counts, "success_st")
        return doc

    async def listing(self, now: float) -> list[dict[str, Any]]:
        """Return every batch still kept, newest first, as :func:`overview` dicts (web UI)."""
        rows = []
        for key, data in await self.store.records(KEY, now):
            if ":" in key[len(KEY) :]:
                continue
            try:
                batch = Batch.decode(data)
            except (ValueError, TypeError):
                continue  # a damaged record hides itself, never the page
            rows.append(overview(batch, await self.store.add_counts(key, {})))
        rows.sort(key=lambda row: (-row["created_ts"], row["bid"]))
        return rows

    async def overview(self, bid: str, now: float) -> dict[str, Any] | None:
        """Return one batch as an :func:`overview` dict, or ``None`` if it is not kept."""
        data = await self.store.get_record(KEY + bid, now) if _keepable(bid) else None
        try:
            batch = None if data is None else Batch.decode(data)
        except (ValueError, TypeError):
            batch = None
        if batch is None:
            return None
        return overview(batch, await self.store.add_counts(KEY + bid, {}))

    # -- middleware ------------------------------------------------------------------

    async def check_push(self, job: dict[str, Any], now: float) -> None:
        """Refuse a job whose ``custom.bid`` is not a string or names no batch (read
        only: nothing is counted)."""
        await self._batch_of(job, now)

    async def _batch_of(self, job: dict[str, Any], now: float) -> str | None:
        """Return the bid of the batch a job joins, or ``None``; raises as :meth:`check_push`."""
        custom = job.get("custom")
        if not isinstance(custom, dict) or not custom.get("bid"):
            return None
        bid = custom["bid"]
        if not isinstance(bid, str):
            raise CommandError("custom.bid must be a string")
        await self.get(bid, now)
        return bid

    async def push(self, job: dict[str, Any], now: float) -> None:
        """Count a job pushed with ``custom.bid`` into its batch (after :meth:`check_push`'s
        rules: the batch must exist)."""
        bid = await self._batch_of(job, now)
        if bid is not None:
            await self.store.add_counts(KEY + bid, {"total": 1, "pending": 1})

    async def acked(self, reservation: Reservation, now: float) -> None:
        """A batch job succeeded, or a callback job finished."""
        job = _job(reservation.entry, MEMBER)
        if job is not None and isinstance(bid := job["custom"].get("bid"), str) and bid:
            deltas = {"pending": -1}
            if "failure" in job:
                deltas["failed"] = -1
            await self.store.add_counts(KEY + bid, deltas)
            await self._settle(bid, now)
        job = _job(reservation.entry, CALLBACK)
        if job is not None:
            await self._callback_done(job["custom"], now)

    async def failed(
        self, reservation: Reservation, placement: Placement | None, now: float
    ) -> None:
        """A batch job failed: the first failure counts it as failed (it ran once)."""
        await self._first_failure(reservation.entry, now)

    def hears_ended(self, body: bytes) -> bool:
        """A batch job must be heard of when it ends without a worker."""
        return MEMBER in body

    async def ended(self, entry: Entry, ending: Ending, now: float) -> None:
        """A batch job deleted unrun, killed or expired counts as failed, as a discarded
        one does (unless it failed before): the batch can complete, never succeed."""
        await self._first_failure(entry, now)

    async def _first_failure(self, entry: Entry, now: float) -> None:
        job = _job(entry, MEMBER)
        if job is None or "failure" in job:
            return
        bid = job["custom"].get("bid")
        if isinstance(bid, str) and bid:
            await self.store.add_counts(KEY + bid, {"failed": 1})
            await self._settle(bid, now)

    # -- transitions -------------------------------------------------------------------

    async def _settle(self, bid: str, now: float) -> None:
        """Fire whichever transitions a committed batch has become ready for."""
        data = await self.store.get_record(KEY + bid, now)
        if data is None:
            return
        batch = Batch.decode(data)
        if not batch.committed:
            return
        counts = await self.store.add_counts(KEY + bid, {})
        if (
            counts.get("complete_st", 0) == 0
            and counts.get("pending", 0) <= counts.get("failed", 0)
            and counts.get("children_complete", 0) <= 0
        ):
            await self._transition(batch, "complete", now)
            counts = await self.store.add_counts(KEY + bid, {})
        if (
            counts.get("success_st", 0) == 0
            and counts.get("complete_st", 0) >= 2
            and counts.get("pending", 0) <= 0
            and counts.get("children_success", 0) <= 0
        ):
            await self._transition(batch, "success", now)

    async def _transition(self, batch: Batch, which: Callback, now: float) -> None:
        claim = f"{KEY}{batch.bid}:{which}"
        if not await self.store.claim(claim, uuid.uuid4().hex, COMMITTED_TTL, now):
            return  # another caller, maybe on another server, took this transition
        job = batch.callbacks.get(which)
        # With no callback to run, the step is done at once ("2").
        await self.store.add_counts(KEY + batch.bid, {f"{which}_st": 1 if job else 2})
        if job is not None:
            await self._push_callback(batch.bid, which, job, now)
        if batch.parent_bid:
            await self.store.add_counts(KEY + batch.parent_bid, {f"children_{which}": -1})
            await self._settle(batch.parent_bid, now)

    async def _push_callback(
        self, bid: str, which: Callback, spec: dict[str, Any], now: float
    ) -> None:
        job = copy.deepcopy(spec)
        job["jid"] = job.get("jid") or new_jid()
        job.pop("at", None)
        custom = job.get("custom")
        job["custom"] = {**(custom if isinstance(custom, dict) else {}), "_bid": bid, "_cb": which}
        job["custom"].pop("bid", None)
        job = validate(job, now)
        check_queue_name(job["queue"])
        await self.store.enqueue([make_entry(job)], now)

    async def _callback_done(self, custom: dict[str, Any], now: float) -> None:
        bid, which = custom.get("_bid"), custom.get("_cb")
        if not isinstance(bid, str) or which not in CALLBACKS:
            return
        done = f"{KEY}{bid}:{which}:done"
        if not await self.store.claim(done, uuid.uuid4().hex, COMMITTED_TTL, now):
            return  # counted already (a callback job may be acknowledged only once)
        await self.store.add_counts(KEY + bid, {f"{which}_st": 1})
        if which == "complete":
            await self._settle(bid, now)


def overview(batch: Batch, counts: dict[str, int]) -> dict[str, Any]:
    """Describe a batch for the web UI.

    Keys: ``bid``, ``description``, ``parent_bid``, ``created_ts`` (Unix seconds),
    ``committed``, ``total``, ``pending``, ``failed``, ``children`` (child batches not yet
    complete), ``callbacks`` (``{name: {"jobtype", "state"}}``, state ``""`` not yet,
    ``"enqueued"``, ``"done"``) and ``state``: ``open`` (not committed), ``running``,
    ``complete`` (every job ran; some failed) or ``success``.
    """
    states = {0: "", 1: "enqueued", 2: "done"}
    callbacks = {
        name: {
            "jobtype": str(job.get("jobtype", "")),
            "state": states.get(max(0, min(2, counts.get(f"{name}_st", 0))), ""),
        }
        for name, job in batch.callbacks.items()
    }
    if not batch.committed:
        state = "open"
    elif counts.get("success_st", 0) > 0:
        state = "success"
    elif counts.get("complete_st", 0) > 0:
        state = "complete"
    else:
        state = "running"
    return {
        "bid": batch.bid,
        "description": batch.description,
        "parent_bid": batch.parent_bid,
        "created_ts": batch.created_at,
        "committed": batch.committed,
        "total": counts.get("total", 0),
        "pending": counts.get("pending", 0),
        "failed": counts.get("failed", 0),
        "children": max(0, counts.get("children_complete", 0)),
        "callbacks": callbacks,
        "state": state,
    }


def batches_of(manager: Manager) -> Batches:
    """Return the batch subsystem registered on ``manager``.

    Raises:
        CommandError: batches are not enabled on this server.
    """
    for middleware in manager.middleware:
        if isinstance(middleware, Batches):
            return middleware
    raise CommandError("batch subsystem is only available in Faktory Enterprise")
