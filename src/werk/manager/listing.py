"""Reading a set, a queue or the working set a page at a time for the JOBS command (Werk's
extension).

The order is the web UI's (:data:`werk.manager.queries.NEWEST_FIRST`): the retry and
scheduled sets due soonest first, the dead set most recent death first, a queue in fetch
order, the working set (the reservations: jobs running now) soonest expiry first, as the
Busy page lists it. The filter is MUTATE's (:func:`werk.manager.selectors.parse_filter`),
and a set's entry is listed exactly when MUTATE with that filter would act on it; a
reservation is listed when the same criteria hold for its job. Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from werk.errors import InvalidJSONError
from werk.job import format_time
from werk.manager.entries import render
from werk.manager.manager import Manager
from werk.manager.queries import NEWEST_FIRST
from werk.manager.retry import DEAD_TTL
from werk.manager.selectors import JobFilter
from werk.protocol import jsonwire
from werk.storage.base import Entry, Reservation, Scored, SetFilter, SetName, Store
from werk.storage.matching import glob

MAX_LIMIT = 1000
"""The most entries one JOBS page may ask for."""
DEFAULT_LIMIT = 100
MAX_OFFSET = 2**31 - 1
"""The largest offset JOBS takes (any store pages that far without overflowing)."""
WORKING_TARGET = "working"
"""JOBS's target for the reservations (Faktory's ``working`` set: the jobs running now)."""
WORKING_SCAN = 1000
"""A filtered listing of the working set reads the reservations this many at a time."""
MAX_PAGE_BYTES = 16 * 1024 * 1024
"""A page stops once its job bodies pass this many bytes (its first entry always comes):
``next_offset`` then points at the first entry left out."""


@dataclass(frozen=True, slots=True)
class Listed:
    """One listed entry: the stored job body and its time (Unix seconds); ``held`` is the
    reservation when the entry is one of the working set."""

    entry: Entry
    at: float
    held: Reservation | None = None


def _entry_doc(item: Listed) -> dict[str, Any]:
    doc: dict[str, Any] = {"jid": item.entry.jid, "at": format_time(item.at)}
    body = item.entry.body
    held = item.held
    if held is not None:
        # The fields of Faktory's reservation (its ``working`` set member); the job as the
        # worker received it, ``enqueued_at`` included.
        doc["reserved_at"] = format_time(held.reserved_at)
        doc["expires_at"] = format_time(held.expires_at)
        doc["wid"] = held.wid
        body = render(body, held.enqueued_at)
    try:
        doc["job"] = jsonwire.loads(body)
    except (InvalidJSONError, ValueError) as exc:
        # A body no JSON decoder takes (written by something else): list it, say why.
        doc["job"] = None
        doc["broken"] = str(exc)[:200]
    return doc


def page_doc(
    target: str, read: list[Listed], limit: int, total: int, offset: int
) -> dict[str, Any]:
    """Return the JOBS reply document for entries ``read`` from ``offset``: up to
    ``limit`` of them are listed, and one more read says the listing goes on.

    ``next_offset`` is the offset of the next page, or ``None`` once the listing ended.
    """
    items = read[:limit]
    jobs: list[dict[str, Any]] = []
    size = 0
    for item in items:
        if jobs and size + len(item.entry.body) > MAX_PAGE_BYTES:
            break
        size += len(item.entry.body)
        jobs.append(_entry_doc(item))
    ended = len(jobs) == len(read)
    if jobs:  # the set grew between counting and reading it
        total = max(total, offset + len(jobs))
    return {
        "target": target,
        "total": total,
        "offset": offset,
        "next_offset": None if ended else offset + len(jobs),
        "jobs": jobs,
    }


def _when(name: SetName, scored: Scored) -> Listed:
    # A dead job's score is its expiry, DEAD_TTL after it died: list when it died.
    at = scored.score - DEAD_TTL if name == "dead" else scored.score
    return Listed(scored.entry, at)


async def set_listing(
    manager: Manager, name: SetName, flt: JobFilter | None, offset: int, limit: int
) -> dict[str, Any]:
    """Return one page of a set as the JOBS reply document.

    ``flt`` ``None`` lists every entry. A filter with only ``jobtype`` is paged by the
    store; ``jids`` reads those entries; ``regexp`` scans the set (O(n) per page, as
    MUTATE's does).
    """
    store = manager.store
    reverse = NEWEST_FIRST[name]
    if flt is None or (flt.jids is None and flt.regexp is None):
        where = None if flt is None else SetFilter(jobtype=flt.jobtype)
        total = await store.set_size(name) if where is None else await store.set_count(name, where)
        # One more than asked, so that a full last page says it is the last.
        rows = await store.set_page(name, offset, limit + 1, reverse=reverse, where=where)
        return page_doc(name, [_when(name, row) for row in rows], limit, total, offset)
    if flt.regexp is None:
        found = [await store.set_get(name, jid) for jid in sorted(flt.jids or ())]
        rows = [row for row in found if row is not None]
        rows.sort(key=lambda row: (row.score, row.entry.jid), reverse=reverse)
    else:
        rows = await store.set_match(name, flt.regexp)
        if reverse:
            rows.reverse()
    rows = [
        row
        for row in rows
        if (flt.jobtype is None or row.entry.jobtype == flt.jobtype)
        and (flt.jids is None or row.entry.jid in flt.jids)
    ]
    chosen = [_when(name, row) for row in rows[offset : offset + limit + 1]]
    return page_doc(name, chosen, limit, len(rows), offset)


async def queue_listing(manager: Manager, queue: str, offset: int, limit: int) -> dict[str, Any]:
    """Return one page of a queue, in fetch order, as the JOBS reply document; each
    entry's ``at`` is when it was enqueued."""
    store = manager.store
    total = (await store.queue_sizes()).get(queue, 0)
    rows = await store.queue_page(queue, offset, limit + 1)
    listed = [Listed(row.entry, row.enqueued_at) for row in rows]
    return page_doc("queue", listed, limit, total, offset)


def _held(reservation: Reservation) -> Listed:
    return Listed(reservation.entry, reservation.reserved_at, reservation)


async def _every_reservation(store: Store) -> list[Reservation]:
    found: list[Reservation] = []
    while True:
        chunk = await store.working(len(found), WORKING_SCAN)
        found.extend(chunk)
        if len(chunk) < WORKING_SCAN:
            return found


def _holds(reservation: Reservation, flt: JobFilter | None, queue: str | None) -> bool:
    entry = reservation.entry
    if queue is not None and entry.queue != queue:
        return False
    if flt is None:
        return True
    return (
        (flt.jobtype is None or entry.jobtype == flt.jobtype)
        and (flt.jids is None or entry.jid in flt.jids)
        and (flt.regexp is None or glob(flt.regexp).match(entry.body))
    )


async def working_listing(
    manager: Manager, flt: JobFilter | None, queue: str | None, offset: int, limit: int
) -> dict[str, Any]:
    """Return one page of the working set (the reservations), soonest expiry first, as the
    JOBS reply document; each entry's ``at`` is when the job was reserved, and it carries
    ``reserved_at``, ``expires_at`` and ``wid`` (Faktory's reservation fields).

    ``flt`` and ``queue`` (the queue the job was fetched from) ``None`` list every
    reservation, paged by the store; ``jids`` reads those reservations; any other filter
    reads the whole working set for every page (O(n)).
    """
    store = manager.store
    rows: Sequence[Reservation]
    if flt is None and queue is None:
        total = await store.working_size()
        rows = await store.working(offset, limit + 1)
        return page_doc(WORKING_TARGET, [_held(row) for row in rows], limit, total, offset)
    if flt is not None and flt.jids is not None:
        found = [await store.reservation(jid) for jid in sorted(flt.jids)]
        rows = sorted(
            (row for row in found if row is not None),
            key=lambda row: (row.expires_at, row.entry.jid),
        )
    else:
        rows = await _every_reservation(store)
    rows = [row for row in rows if _holds(row, flt, queue)]
    chosen = [_held(row) for row in rows[offset : offset + limit + 1]]
    return page_doc(WORKING_TARGET, chosen, limit, len(rows), offset)
