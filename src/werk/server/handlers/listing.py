"""The JOBS command (Werk's extension): a page of the retry, scheduled or dead set, of a
queue, or of the working set (the jobs running now), read only.

The handler parses and checks the argument strictly (an unknown key, an empty filter or a
number out of range is refused, never read as "everything"), then calls
:mod:`werk.manager.listing`. docs/protocol.md (``### JOBS ...``) is the reference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from werk.errors import CommandError
from werk.job import QUEUE_NAME, QUEUE_RULE
from werk.manager.listing import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_OFFSET,
    WORKING_TARGET,
    queue_listing,
    set_listing,
    working_listing,
)
from werk.manager.selectors import QUEUE_TARGET, JobFilter, parse_filter
from werk.protocol.resp import encode_bulk
from werk.server.handlers.parse import object_arg, reply_json
from werk.storage.base import SET_NAMES, SetName

if TYPE_CHECKING:
    from werk.server.state import ConnectionState, ServerState

JOBS_KEYS = ("target", "queue", "filter", "offset", "limit")
TARGETS = (*SET_NAMES, QUEUE_TARGET, WORKING_TARGET)


def _whole(payload: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = payload.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise CommandError(f"JOBS {key} must be a whole number from {low} to {high}")
    return value


def _checked(payload: dict[str, Any]) -> str:
    unknown = sorted(str(key) for key in payload if key not in JOBS_KEYS)
    if unknown:
        raise CommandError(f"JOBS: unknown key {unknown[0]!r} (known: {', '.join(JOBS_KEYS)})")
    target = payload.get("target")
    if not isinstance(target, str) or target not in TARGETS:
        raise CommandError(f"JOBS target must be one of {', '.join(TARGETS)}")
    if target == QUEUE_TARGET:
        queue = payload.get("queue")
        if not isinstance(queue, str) or not QUEUE_NAME.match(queue):
            raise CommandError(f"JOBS target {QUEUE_TARGET} needs a queue: {QUEUE_RULE}")
        if "filter" in payload:
            raise CommandError(f"JOBS target {QUEUE_TARGET} takes no filter")
    elif target == WORKING_TARGET:
        queue = payload.get("queue")
        if "queue" in payload and (not isinstance(queue, str) or not QUEUE_NAME.match(queue)):
            raise CommandError(f"JOBS queue must be a queue name: {QUEUE_RULE}")
    elif "queue" in payload:
        raise CommandError(
            f"JOBS queue applies to targets {QUEUE_TARGET} and {WORKING_TARGET} only"
        )
    return target


def _filter(payload: dict[str, Any]) -> JobFilter | None:
    if "filter" not in payload:
        return None
    flt = parse_filter(payload["filter"])
    if flt is None or flt.selects_all:
        raise CommandError(
            "invalid filter: names no criterion (leave filter out to list the whole set)"
        )
    return flt


async def jobs(server: ServerState, conn: ConnectionState, arg: bytes) -> bytes:
    """JOBS {"target": "retries|scheduled|dead", "filter": {"jids": [...], "regexp":
    "glob", "jobtype": "..."}, "offset": n, "limit": n} | JOBS {"target": "queue", "queue":
    "...", "offset": n, "limit": n} | JOBS {"target": "working", "queue": "...", "filter":
    {...}, "offset": n, "limit": n} answers a bulk JSON page: ``target``, ``total``,
    ``offset``, ``next_offset`` and ``jobs`` (each ``jid``, ``at``, ``job``; a working
    entry also ``reserved_at``, ``expires_at`` and ``wid``)."""
    payload = object_arg(arg, "JOBS", "JOBS needs a JSON object")
    target = _checked(payload)
    offset = _whole(payload, "offset", 0, 0, MAX_OFFSET)
    limit = _whole(payload, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    if target == QUEUE_TARGET:
        doc = await queue_listing(server.manager, payload["queue"], offset, limit)
        return encode_bulk(reply_json(doc))
    flt = _filter(payload)
    if target == WORKING_TARGET:
        queue = payload.get("queue")
        doc = await working_listing(server.manager, flt, queue, offset, limit)
        return encode_bulk(reply_json(doc))
    name: SetName = payload["target"]  # one of SET_NAMES (checked)
    doc = await set_listing(server.manager, name, flt, offset, limit)
    return encode_bulk(reply_json(doc))
