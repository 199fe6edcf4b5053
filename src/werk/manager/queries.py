"""The web UI's query and action API: counts, pages, single jobs and bulk actions.

The web UI reads and acts only through :class:`Queries`, never through a store. Every
listing is paged by the store (``queue_page``, ``set_page``, ``working`` with offset and
limit), so a page view costs one page, not a scan. Job bodies are decoded here into plain
dicts (see :func:`job_view`) so templates never touch JSON or storage types.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from werk.manager.jobtext import cut_json, skim
from werk.manager.manager import Manager
from werk.manager.paging import PER_PAGE, Page, clamp
from werk.manager.processes import Processes, busy_counts
from werk.manager.retry import DEAD_TTL
from werk.protocol import jsonwire
from werk.storage.base import SET_NAMES, DayCount, SetFilter, SetName

__all__ = [
    "PER_PAGE",
    "SET_ACTIONS",
    "SET_NAMES",
    "DayCount",
    "Page",
    "Queries",
    "QueueRow",
    "SetFilter",
    "SetName",
    "Summary",
    "job_view",
]

MAX_HISTORY_DAYS = 180
MAX_ARG_CHARS = 1024
MAX_ARGS_CHARS = 4096
"""A row's args preview stops after this many characters, whatever the number of args."""
LARGE_BODY = 64 * 1024
"""Bodies longer than this (bytes) are skimmed (:func:`werk.manager.jobtext.skim`), not
decoded whole: a page shows their first args and fields only."""
PRETTY_CHARS = 64 * 1024
"""The job page shows this many characters of the job's indented JSON at most."""
CHUNK = 1000
FIND_SCAN = 100_000
"""Finding a jid reads at most this many entries of each queue (queues have no jid index)."""

SetAction = Literal["retry", "add", "delete", "kill"]
SET_ACTIONS: dict[SetName, tuple[SetAction, ...]] = {
    "retries": ("retry", "delete", "kill"),
    "scheduled": ("add", "delete", "kill"),
    "dead": ("retry", "delete"),
}
"""The actions each set offers: retry and add both move jobs to their queues now."""

NEWEST_FIRST: dict[SetName, bool] = {"scheduled": False, "retries": False, "dead": True}
"""Listing order per set: due soonest first, except the dead set (most recent death first)."""

ACTIVE_JOB = "ActiveJob::QueueAdapters::FaktoryAdapter::JobWrapper"
MAILERS = ("ActionMailer::DeliveryJob", "ActionMailer::MailDeliveryJob")


@dataclass(frozen=True, slots=True)
class Summary:
    """The counts of the summary bar shown on every page."""

    processed: int
    failed: int
    busy: int
    enqueued: int
    retries: int
    scheduled: int
    dead: int


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One line of the queue list."""

    name: str
    size: int
    latency: float
    paused: bool


def args_text(args: list[Any]) -> str:
    """Return the preview of a job's args: each as JSON cut at :data:`MAX_ARG_CHARS`
    characters, joined by ``", "`` and cut after :data:`MAX_ARGS_CHARS` in all (a cut
    shows ``…``); the work follows the preview's length, not the args' size."""
    texts: list[str] = []
    size = 0
    for arg in args:
        if size >= MAX_ARGS_CHARS:
            texts.append("…")
            break
        text, cut = cut_json(arg, min(MAX_ARG_CHARS, MAX_ARGS_CHARS - size))
        texts.append(text + "…" if cut else text)
        size += len(text) + 2
    return ", ".join(texts)


def display_type(job: dict[str, Any]) -> str:
    """Return the name to show for a job: the wrapped class for ActiveJob wrappers."""
    jobtype = str(job.get("jobtype", ""))
    custom = job.get("custom")
    if jobtype != ACTIVE_JOB or not isinstance(custom, dict) or not custom.get("wrapped"):
        return jobtype
    wrapped = str(custom["wrapped"])
    args = job.get("args")
    if wrapped in MAILERS and isinstance(args, list) and args and isinstance(args[0], dict):
        inner = args[0].get("arguments")
        if isinstance(inner, list) and len(inner) >= 2:
            return f"{inner[0]}#{inner[1]}"
    return wrapped


def job_view(body: bytes, detail: bool = False, **extra: Any) -> dict[str, Any]:
    """Decode a stored job body into a plain dict for templates; never raises.

    Adds ``display_type``, ``args_text`` (see :func:`args_text`), ``size`` (the body's
    bytes), ``skimmed`` (the fields a body over :data:`LARGE_BODY` bytes had cut or left
    out, see :func:`~werk.manager.jobtext.skim`) and whatever ``extra`` holds (``score``,
    ...). With ``detail`` (the job page) also ``body`` (as stored), ``pretty`` (at most
    :data:`PRETTY_CHARS` characters of the job as indented JSON, or of the stored text
    when skimmed) and ``pretty_cut`` (True when that was cut).
    ``failure`` is ``None`` or a dict whose ``errtype``, ``message`` and ``failed_at`` are
    strings and ``backtrace`` a list of strings. A job that cannot be shown (not a JSON
    object, nested too deeply, anything else) becomes a placeholder with the same keys and
    ``broken`` saying why, so one bad job never takes a whole page down.
    """
    try:
        view = _job_view(body, detail)
    except Exception as exc:
        view = _broken_view(body, f"{type(exc).__name__}: {exc}")
    if detail:
        view["body"] = body
    view.update(extra)
    return view


_JID_IN_BODY = re.compile(rb'"jid":"([^"\\]{1,200})"')


def _broken_view(body: bytes, reason: str) -> dict[str, Any]:
    found = _JID_IN_BODY.search(body)
    jid = found.group(1).decode(errors="replace") if found else "?"
    text = body[:MAX_ARG_CHARS].decode(errors="replace")
    return {
        "jid": jid,
        "jobtype": "?",
        "queue": "",
        "args": [],
        "custom": {},
        "failure": None,
        "display_type": "?",
        "args_text": "(this job cannot be shown)",
        "pretty": text + ("…" if len(body) > MAX_ARG_CHARS else ""),
        "pretty_cut": len(body) > MAX_ARG_CHARS,
        "size": len(body),
        "skimmed": [],
        "broken": reason[:200],
    }


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else json.dumps(value)


def _failure_view(failure: Any) -> dict[str, Any] | None:
    if not isinstance(failure, dict):
        return None
    backtrace = failure.get("backtrace")
    return {
        **failure,
        "errtype": str(failure.get("errtype") or ""),
        "message": str(failure.get("message") or ""),
        "failed_at": str(failure.get("failed_at") or ""),
        "backtrace": [str(line) for line in backtrace] if isinstance(backtrace, list) else [],
    }


def _job_view(body: bytes, detail: bool) -> dict[str, Any]:
    job = skim(body) if len(body) > LARGE_BODY else jsonwire.loads(body)
    if not isinstance(job, dict):
        return _broken_view(body, "not a JSON object")
    skimmed = job.pop("skimmed", [])
    args = job.get("args")
    custom = job.get("custom")
    view = {
        **job,
        # The fields every page links or sorts by are always strings, whatever was stored.
        "jid": _text(job.get("jid")),
        "jobtype": _text(job.get("jobtype")),
        "queue": _text(job.get("queue")),
        "display_type": display_type(job),
        "args_text": args_text(args) if isinstance(args, list) else "",
        "failure": _failure_view(job.get("failure")),
        "custom": custom if isinstance(custom, dict) else {},
        "size": len(body),
        "skimmed": skimmed,
    }
    if detail:
        if skimmed:  # the stored text as it is, never the whole job re-encoded
            view["pretty"] = body[:PRETTY_CHARS].decode(errors="replace")
            view["pretty_cut"] = len(body) > PRETTY_CHARS
        else:
            view["pretty"], view["pretty_cut"] = cut_json(job, PRETTY_CHARS, indent=2)
    return view


def _scored_view(name: SetName, score: float, body: bytes, detail: bool = False) -> dict[str, Any]:
    # A dead job's score is its expiry, 180 days after it died.
    died = score - DEAD_TTL if name == "dead" else None
    return job_view(body, detail, score=score, died_ts=died)


def is_empty(where: SetFilter | None) -> bool:
    """Return True when a filter selects every entry."""
    return where is None or not (where.queue or where.jobtype or where.text)


class Queries:
    """What the web UI needs to see and do, over a manager and the process registry.

    Args:
        manager: the server's manager (its store does the paging).
        processes: the worker process registry.
        clock: Unix seconds (tests pass a controlled one).
    """

    def __init__(
        self, manager: Manager, processes: Processes, clock: Callable[[], float] = time.time
    ) -> None:
        self._manager = manager
        self._store = manager.store
        self._processes = processes
        self._clock = clock

    # -- overview ----------------------------------------------------------------

    async def summary(self) -> Summary:
        """Return the summary bar counts."""
        store = self._store
        counters = await store.counters()
        sizes = await store.queue_sizes()
        return Summary(
            processed=counters.processed,
            failed=counters.failures,
            busy=await store.working_size(),
            enqueued=sum(sizes.values()),
            retries=await store.set_size("retries"),
            scheduled=await store.set_size("scheduled"),
            dead=await store.set_size("dead"),
        )

    async def history(self, days: int) -> list[DayCount]:
        """Return processed and failed counts per UTC day, oldest first, ending today.

        ``days`` is clamped to 1..180.
        """
        days = max(1, min(MAX_HISTORY_DAYS, days))
        today = datetime.fromtimestamp(self._clock(), UTC).date()
        names = [(today - timedelta(days=n)).isoformat() for n in range(days - 1, -1, -1)]
        counts = {c.day: c for c in await self._store.history(names)}
        return [counts.get(day, DayCount(day, 0, 0)) for day in names]

    # -- queues ------------------------------------------------------------------

    async def queues(self) -> list[QueueRow]:
        """Return every known queue with its size, latency and pause state, by name."""
        sizes = await self._store.queue_sizes()
        paused = await self._store.paused()
        latency = await self._manager.latency(sorted(sizes)) if sizes else {}
        return [
            QueueRow(name, sizes[name], latency.get(name, 0.0), name in paused)
            for name in sorted(sizes)
        ]

    async def queue_page(self, queue: str, page: int) -> Page[dict[str, Any]]:
        """Return a page of a queue's jobs in fetch order (``extra``: size, paused)."""
        sizes = await self._store.queue_sizes()
        page = clamp(page, sizes.get(queue, 0))
        rows = await self._store.queue_page(queue, (page - 1) * PER_PAGE, PER_PAGE)
        items = [job_view(q.entry.body, enqueued_ts=q.enqueued_at) for q in rows]
        paused = queue in await self._store.paused()
        known = queue in sizes
        return Page(items, page, sizes.get(queue, 0), extra={"paused": paused, "known": known})

    async def pause(self, queue: str) -> None:
        """Pause a queue: FETCH skips it until it is resumed."""
        await self._manager.pause([queue])

    async def resume(self, queue: str) -> None:
        """Resume a paused queue."""
        await self._manager.resume([queue])

    async def clear(self, queue: str) -> int:
        """Delete a queue with all its jobs (as Faktory's Clear button does); return how
        many jobs it held just before."""
        held = (await self._store.queue_sizes()).get(queue, 0)
        await self._manager.remove([queue])
        return held

    async def delete_queued(self, queue: str, jids: Sequence[str]) -> int:
        """Delete the listed jobs from a queue; return how many were deleted."""
        return await self._manager.delete_queued(queue, jids)

    # -- busy ----------------------------------------------------------------------

    async def processes(self) -> list[dict[str, Any]]:
        """Return the worker processes (newest first), each with its ``busy`` job count.

        ``busy_capped`` is True when more reservations exist than were counted.
        """
        counts, capped = await busy_counts(self._store)
        return [
            {**asdict(p), "busy": counts.get(p.wid, 0), "busy_capped": capped}
            for p in await self._processes.list()
        ]

    async def working_page(self, page: int) -> Page[dict[str, Any]]:
        """Return a page of the jobs running now (reservations), soonest expiry first."""
        total = await self._store.working_size()
        page = clamp(page, total)
        rows = await self._store.working((page - 1) * PER_PAGE, PER_PAGE)
        items = [
            job_view(
                r.entry.body,
                wid=r.wid,
                reserved_ts=r.reserved_at,
                expires_ts=r.expires_at,
                enqueued_ts=r.enqueued_at,
            )
            for r in rows
        ]
        return Page(items, page, total)

    async def signal(self, wid: str | None, state: Literal["quiet", "terminate"]) -> int:
        """Ask one process (``None``: all) to go quiet or stop; return how many were told."""
        return await self._processes.signal(wid, state)

    # -- scheduled, retries, dead ------------------------------------------------------

    async def set_page(
        self, name: SetName, page: int, where: SetFilter | None = None
    ) -> Page[dict[str, Any]]:
        """Return a page of a set in its listing order, filtered in the store.

        The total counts the matching entries (the set's size when unfiltered).
        """
        where = None if is_empty(where) else where
        store = self._store
        total = await store.set_size(name) if where is None else await store.set_count(name, where)
        page = clamp(page, total)
        rows = await store.set_page(
            name, (page - 1) * PER_PAGE, PER_PAGE, reverse=NEWEST_FIRST[name], where=where
        )
        return Page([_scored_view(name, s.score, s.entry.body) for s in rows], page, total)

    async def set_job(self, name: SetName, jid: str) -> dict[str, Any] | None:
        """Return one job of a set as a view dict (with ``score``), or ``None``."""
        scored = await self._store.set_get(name, jid)
        return None if scored is None else _scored_view(name, scored.score, scored.entry.body, True)

    async def job_outcome(self, jid: str) -> dict[str, Any]:
        """Return what the server knows of a job by jid: the RESULT document (state, and
        for finished jobs that asked for it, the result or the last error)."""
        results = self._manager.results
        if results is None:
            return {"jid": jid, "state": "unknown"}
        return await results.state(jid, self._clock())

    async def act(
        self,
        name: SetName,
        action: str,
        jids: Sequence[str] | None,
        where: SetFilter | None = None,
    ) -> int:
        """Apply a set action to the listed jobs, or (``jids`` None) to all matching ``where``.

        ``retry`` and ``add`` move jobs to their queues now, ``delete`` removes them,
        ``kill`` moves them to the dead set for 180 days; the last two tell the features
        waiting on them, as MUTATE does (:mod:`werk.manager.deletion`). Returns how many
        were touched.

        Raises:
            ValueError: the set does not offer ``action``.
        """
        if action not in SET_ACTIONS[name]:
            raise ValueError(f"{name} has no action {action!r}")
        if jids is not None and not jids:
            return 0
        if jids is None and (action == "kill" or not is_empty(where)):
            jids = await self.matching(name, where)
        # Each goes CHUNK jobs per store call (werk.manager.deletion).
        if action == "delete":
            return await self._manager.set_remove(name, jids)
        if action == "kill":
            return await self._manager.deletions.kill(name, jids)
        return await self._manager.deletions.requeue(name, jids)

    async def matching(self, name: SetName, where: SetFilter | None) -> list[str]:
        """Return the jids of every entry matching ``where``, read page by page."""
        where = None if is_empty(where) else where
        jids: list[str] = []
        while True:
            rows = await self._store.set_page(name, len(jids), CHUNK, where=where)
            jids.extend(item.entry.jid for item in rows)
            if len(rows) < CHUNK:
                return jids

    # -- find by jid -------------------------------------------------------------------

    async def locate(self, jid: str) -> dict[str, Any] | None:
        """Find a job by jid: running, in a set, or waiting in a queue.

        Returns a view dict with ``where`` (``"working"``, a set name or ``"queue"``) and
        the times that place knows, or ``None``. Queues have no index by jid, so each is
        read page by page, up to its first :data:`FIND_SCAN` entries.
        """
        held = await self._store.reservation(jid)
        if held is not None:
            return job_view(
                held.entry.body,
                True,
                where="working",
                wid=held.wid,
                reserved_ts=held.reserved_at,
                expires_ts=held.expires_at,
                enqueued_ts=held.enqueued_at,
            )
        for name in SET_NAMES:
            scored = await self._store.set_get(name, jid)
            if scored is not None:
                return {**_scored_view(name, scored.score, scored.entry.body), "where": name}
        for queue in sorted(await self._store.queue_sizes()):
            for start in range(0, FIND_SCAN, CHUNK):
                rows = await self._store.queue_page(queue, start, CHUNK)
                for row in rows:
                    if row.entry.jid == jid:
                        return job_view(
                            row.entry.body, True, where="queue", enqueued_ts=row.enqueued_at
                        )
                if len(rows) < CHUNK:
                    break
        return None
