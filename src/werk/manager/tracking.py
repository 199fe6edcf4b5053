"""Job tracking (Faktory Enterprise): a job's state and a worker's progress reports.

A job pushed with a truthy ``custom.track`` gets a state record ``track:<jid>`` that the
middleware moves through ``enqueued`` → ``working`` → ``success`` | ``failed`` | ``dead``.
Workers report progress with TRACK SET into a separate record ``trackp:<jid>`` (so a
progress report never overwrites a state change made at the same time), and may extend
their reservation with ``reserve_until``. Finished jobs' data is kept for
:data:`FINISHED_TTL`. :func:`progress` serves the web UI's Busy page.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from werk.errors import CommandError
from werk.job import format_time, parse_time
from werk.manager.middleware import Ending, Middleware
from werk.storage.base import Entry, Placement, Reservation, Store

if TYPE_CHECKING:
    from werk.manager.manager import Manager

STATE = "track:"
PROGRESS = "trackp:"
FINISHED_TTL = 30 * 60.0
"""How long a finished job's tracking data is kept."""
ACTIVE_TTL = 30 * 86400.0
"""A safety net for jobs that vanish without finishing (a removed queue, say)."""
MAX_RESERVE = 86400.0
"""``reserve_until`` is capped at this many seconds from now."""
MARKER = b'"track"'
FINISHED = frozenset({"success", "failed", "dead"})


def tracked(job: dict[str, Any]) -> bool:
    """Return whether a job opted into tracking with a truthy ``custom.track``."""
    custom = job.get("custom")
    return isinstance(custom, dict) and bool(custom.get("track"))


def _tracked(reservation: Reservation) -> bool:
    return MARKER in reservation.entry.body and tracked(json.loads(reservation.entry.body))


def _document(data: bytes | None) -> dict[str, Any]:
    if data is None:
        return {}
    doc = json.loads(data)
    return doc if isinstance(doc, dict) else {}


def _check_progress(update: dict[str, Any]) -> None:
    """Faktory's types for TRACK SET: ``percent`` a whole number 0..100, ``desc`` a string
    (``null`` leaves either out). Anything else was kept and echoed by TRACK GET as sent
    (``1e300``, ``"x"``, an object)."""
    percent, desc = update.get("percent"), update.get("desc")
    if percent is not None and (type(percent) is not int or not 0 <= percent <= 100):
        raise CommandError("TRACK SET percent must be a whole number from 0 to 100")
    if desc is not None and not isinstance(desc, str):
        raise CommandError("TRACK SET desc must be a string")


class Tracking(Middleware):
    """The tracking subsystem: TRACK commands and the middleware that records states.

    Args:
        store: the server's store; the records live there.
    """

    reads_custom_only = True

    def __init__(self, store: Store) -> None:
        self.store = store

    async def _state(self, jid: str, state: str, now: float, ttl: float = ACTIVE_TTL) -> None:
        doc = json.dumps({"state": state, "updated_at": now}, separators=(",", ":"))
        await self.store.put_record(STATE + jid, doc.encode(), ttl, now)

    async def _finish(self, jid: str, state: str, now: float) -> None:
        await self._state(jid, state, now, FINISHED_TTL)
        data = await self.store.get_record(PROGRESS + jid, now)
        if data is not None:
            await self.store.put_record(PROGRESS + jid, data, FINISHED_TTL, now)

    # -- middleware ------------------------------------------------------------------

    async def push(self, job: dict[str, Any], now: float) -> None:
        """A tracked job is ``enqueued``."""
        if tracked(job):
            await self._state(job["jid"], "enqueued", now)

    async def fetched(self, reservation: Reservation, now: float) -> bool:
        """A tracked job is ``working``."""
        if _tracked(reservation):
            await self._state(reservation.entry.jid, "working", now)
        return True

    async def acked(self, reservation: Reservation, now: float) -> None:
        """A tracked job finished with ``success``."""
        if _tracked(reservation):
            await self._finish(reservation.entry.jid, "success", now)

    def hears_ended(self, body: bytes) -> bool:
        """A tracked job must be heard of when it ends without a worker."""
        return MARKER in body

    async def ended(self, entry: Entry, ending: Ending, now: float) -> None:
        """A tracked job deleted unrun or expired is ``failed``, as a discarded one; one
        killed is ``dead``."""
        if tracked(json.loads(entry.body)):
            await self._finish(entry.jid, "dead" if ending.kind == "killed" else "failed", now)

    async def failed(
        self, reservation: Reservation, placement: Placement | None, now: float
    ) -> None:
        """A tracked job ``failed`` (and waits for a retry, or was discarded) or is ``dead``."""
        if not _tracked(reservation):
            return
        jid = reservation.entry.jid
        if placement is None:
            await self._finish(jid, "failed", now)
        elif placement.set == "dead":
            await self._finish(jid, "dead", now)
        else:
            await self._state(jid, "failed", now)

    # -- commands ------------------------------------------------------------------

    async def set(
        self, update: Any, now: float, extend: Callable[[str, float], Awaitable[bool]]
    ) -> None:
        """Apply TRACK SET: record ``percent``/``desc``, extend to ``reserve_until``.

        Args:
            update: the decoded JSON of TRACK SET.
            now: the current time.
            extend: lengthens a reservation (the manager's ``extend``; never shortens).

        Raises:
            CommandError: the update lacks a jid or has badly typed fields.
        """
        if (
            not isinstance(update, dict)
            or not isinstance(update.get("jid"), str)
            or "\x00" in update["jid"]  # no job has one (PUSH refuses it)
        ):
            raise CommandError("TRACK SET needs a JSON object with a jid")
        jid: str = update["jid"]
        _check_progress(update)
        until = update.get("reserve_until")
        if until:
            if not isinstance(until, str):
                raise CommandError("reserve_until must be an RFC 3339 timestamp")
            try:
                deadline = parse_time(until)
            except ValueError as exc:
                raise CommandError(f"invalid timestamp for 'reserve_until': \"{until}\"") from exc
            await extend(jid, min(deadline, now + MAX_RESERVE))
        fields = {key: update[key] for key in ("percent", "desc") if update.get(key) is not None}
        if not fields:
            return
        doc = _document(await self.store.get_record(PROGRESS + jid, now))
        doc.update(fields, updated_at=now)
        state = _document(await self.store.get_record(STATE + jid, now)).get("state")
        ttl = FINISHED_TTL if state in FINISHED else ACTIVE_TTL
        await self.store.put_record(PROGRESS + jid, json.dumps(doc).encode(), ttl, now)

    async def get(self, jid: str, now: float) -> dict[str, Any]:
        """Return TRACK GET's document: ``jid``, ``percent``/``desc`` if reported,
        ``state`` (``unknown`` for untracked or forgotten jobs) and ``updated_at``."""
        if "\x00" in jid:  # no job has one (PUSH refuses it), and no store key holds it
            return {"jid": jid, "state": "unknown"}
        state = _document(await self.store.get_record(STATE + jid, now))
        report = _document(await self.store.get_record(PROGRESS + jid, now))
        doc: dict[str, Any] = {"jid": jid}
        for key in ("percent", "desc"):
            if key in report:
                doc[key] = report[key]
        doc["state"] = state.get("state", "unknown")
        stamps = [float(d["updated_at"]) for d in (state, report) if "updated_at" in d]
        doc["updated_at"] = format_time(max(stamps)) if stamps else ""
        return doc


def tracking_of(manager: Manager) -> Tracking:
    """Return the tracking subsystem registered on ``manager``.

    Raises:
        CommandError: tracking is not enabled on this server.
    """
    for middleware in manager.middleware:
        if isinstance(middleware, Tracking):
            return middleware
    raise CommandError("tracking subsystem is only available in Faktory Enterprise")


async def progress(manager: Manager, jids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Return the progress reported for the listed jobs (for the web UI's Busy page).

    Returns:
        ``{jid: {"percent": n, "desc": "...", "updated_at": "<RFC 3339>"}}`` for each jid
        that reported progress with TRACK SET (``percent``/``desc`` only when reported);
        jids without a report are left out.
    """
    store, now = manager.store, manager.clock()
    found = await asyncio.gather(*(store.get_record(PROGRESS + jid, now) for jid in jids))
    result: dict[str, dict[str, Any]] = {}
    for jid, data in zip(jids, found, strict=True):
        report = _document(data)
        if report:
            stamp = report.pop("updated_at", None)
            report["updated_at"] = format_time(float(stamp)) if stamp is not None else ""
            result[jid] = report
    return result
