"""The verb table: one handler per command, each parsing, calling the manager, encoding.

Handlers hold no job rules (Faktory's rule: commands have no business logic). Each one's
docstring starts with its wire syntax; docs/protocol.md is the full reference. One module
per verb family: :mod:`.jobs`, :mod:`.workers`, :mod:`.admin`, :mod:`.batch`,
:mod:`.track`, :mod:`.limit`, :mod:`.results`, :mod:`.listing`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from werk.protocol import commands as verbs
from werk.server.handlers.admin import flush, info, mutate, queue
from werk.server.handlers.batch import batch
from werk.server.handlers.jobs import NO_JSON, ack, fail, fetch, push, pushb
from werk.server.handlers.limit import limit
from werk.server.handlers.listing import jobs
from werk.server.handlers.results import result
from werk.server.handlers.track import track
from werk.server.handlers.workers import beat, end, processes

if TYPE_CHECKING:
    from werk.server.state import ConnectionState, ServerState

Handler = Callable[["ServerState", "ConnectionState", bytes], Awaitable[bytes | None]]

HANDLERS: dict[str, Handler] = {
    verbs.PUSH: push,
    verbs.PUSHB: pushb,
    verbs.FETCH: fetch,
    verbs.ACK: ack,
    verbs.FAIL: fail,
    verbs.BEAT: beat,
    verbs.INFO: info,
    verbs.FLUSH: flush,
    verbs.END: end,
    verbs.MUTATE: mutate,
    verbs.QUEUE: queue,
    verbs.BATCH: batch,
    verbs.TRACK: track,
    verbs.LIMIT: limit,
    verbs.RESULT: result,
    verbs.JOBS: jobs,
    verbs.PROCESSES: processes,
}

BARE_REPLIES: dict[str, str] = {
    verbs.PUSH: NO_JSON,
    verbs.PUSHB: NO_JSON,
    verbs.FETCH: "must call fetch with at least one queue",
    verbs.ACK: "invalid ACK ",
    verbs.FAIL: "invalid FAIL ",
    verbs.BEAT: "invalid BEAT ",
    verbs.MUTATE: "invalid format",
    verbs.QUEUE: "QUEUE needs an argument",
    verbs.LIMIT: "LIMIT needs an argument",
    verbs.RESULT: "RESULT needs an argument",
    verbs.JOBS: "JOBS needs an argument",
}
"""The ``-ERR`` text for a verb sent bare (no space, no argument): Faktory's where it has
one (``FETCH``: its manager's message; ``PUSH``: Go's decoder on empty input)."""
