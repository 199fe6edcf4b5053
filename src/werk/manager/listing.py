"""Reading a set or a queue a page at a time for the JOBS command (Werk's extension).

The order is the web UI's (:data:`werk.manager.queries.NEWEST_FIRST`): the retry and
scheduled sets due soonest first, the dead set most recent death first, a queue in fetch
order. The filter is MUTATE's (:func:`werk.manager.selectors.parse_filter`), and an entry
is listed exactly when MUTATE with that filter would act on it. Nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from werk.errors import InvalidJSONError
from werk.job import format_time
from werk.manager.manager import Manager
from werk.manager.queries import NEWEST_FIRST
from werk.manager.retry import DEAD_TTL
from werk.manager.selectors import JobFilter
from werk.protocol import jsonwire
from werk.storage.base import Entry, Scored, SetFilter, SetName

MAX_LIMIT = 1000
"""The most entries one JOBS page may ask for."""
DEFAULT_LIMIT = 100
MAX_OFFSET = 2**31 - 1
"""The largest offset JOBS takes (any store pages that far without overflowing)."""
MAX_PAGE_BYTES = 16 * 1024 * 1024
"""A page stops once its job bodies pass this many bytes (its first entry always comes):
``next_offset`` then points at the first entry left out."""


@dataclass(frozen=True, slots=True)
class Listed:
    """One listed entry: the stored job body and its time (Unix seconds)."""

    entry: Entry
    at: float


def _entry_doc(item: Listed) -> dict[str, Any]:
    doc: dict[str, Any] = {"jid": item.entry.jid, "at": format_time(item.at)}
    try:
        doc["job"] = jsonwire.loads(item.entry.body)
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
