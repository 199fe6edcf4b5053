"""Job results (a Werk extension): a job's outcome and return value, kept for a while.

A job asks for its result with ``custom.result_ttl`` (seconds, at most
:data:`werk.job.MAX_RESULT_TTL`). Its state record ``result:<jid>`` is written at push (``pending``,
durable before the job is stored, so that no outcome can come before it) and again when
the job ends: ``succeeded`` with the JSON value its worker sent in
``ACK {"jid": ..., "result": value}``, ``failed`` (discarded after a failure) or ``dead``,
with the last error; a finished record lives ``result_ttl`` seconds. While the job lives,
its state is read from the store itself (a reservation: ``working``; the scheduled, retry
and dead sets). Jobs that did not ask are still found in those places, but a queued one is
``unknown`` (queues cannot be searched by jid) and nothing is kept when it ends.

Everything is built on the store's records and counters, so every backend has it. Waiting
for an outcome is server-side: a waiter is woken by an ACK or FAIL on this server, and
re-reads the record now and then (:data:`RECHECK`) for jobs finished on another server
sharing the store. docs/protocol.md ("Job results") is the wire reference.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from werk.errors import CommandError, ResultTooLargeError
from werk.job import MAX_RESULT_TTL, format_time
from werk.manager.deadline import Deadline
from werk.manager.middleware import Ending, Middleware
from werk.storage.base import Entry, Placement, Reservation, SetName, Store

if TYPE_CHECKING:
    from werk.manager.retry import FailureReport

log = logging.getLogger("werk.results")

RECORD = "result:"
STATS_KEY = "stats:results"
MARKER = b'"result_ttl"'
"""Jobs whose body lacks this byte string did not ask for a result (the cheap check)."""
PENDING_TTL = 30 * 86400.0
"""A safety net for the ``pending`` record of a job that vanishes without ending."""
DEFAULT_MAX_BYTES = 1024 * 1024
"""The default size limit of one result, in bytes of its JSON text."""
COUNT_EVERY = 0.2
"""Seconds the outcome counters gather in memory before one store write."""
MAX_WAIT = 300.0
"""The longest a RESULT may block, in seconds."""
RECHECK = (0.05, 0.1, 0.2, 0.5, 1.0)
"""Seconds between re-reads of the record while waiting; the last one repeats."""
FINAL = frozenset({"succeeded", "failed", "dead", "unknown"})
"""States a wait returns on: the job ended (or is not known at all)."""
LIVE_SETS: tuple[tuple[SetName, str], ...] = (
    ("retries", "retrying"),
    ("scheduled", "scheduled"),
    ("dead", "dead"),
)
"""The sets a live job is looked for in, with the state each means, in lookup order."""
STATES = ("queued", "scheduled", "working", "retrying", "dead", "succeeded", "failed", "unknown")


def result_ttl(job: dict[str, Any]) -> float | None:
    """Return the ``custom.result_ttl`` a job asks for, or ``None`` when it asks for none.

    Raises:
        CommandError: ``result_ttl`` is not a number of seconds in (0, 30 days].
    """
    custom = job.get("custom")
    if not isinstance(custom, dict) or custom.get("result_ttl") is None:
        return None
    ttl = custom["result_ttl"]
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl):
        raise CommandError("result_ttl must be a number of seconds")
    if not 0 < ttl <= MAX_RESULT_TTL:
        raise CommandError(
            f"result_ttl must be more than 0 and at most {int(MAX_RESULT_TTL)} seconds (30 days)"
        )
    return float(ttl)


def _asked(body: bytes) -> tuple[dict[str, Any], float] | None:
    """Return a stored job and its ``result_ttl``, or ``None`` when it asked for none."""
    if MARKER not in body:
        return None
    job = json.loads(body)
    try:
        ttl = result_ttl(job)
    except CommandError:
        return None
    return None if ttl is None else (job, ttl)


def _job_fields(job: dict[str, Any]) -> dict[str, Any]:
    """The job's own fields a RESULT document repeats: ``args`` and ``custom``."""
    return {key: job[key] for key in ("args", "custom") if key in job}


def _error(body: bytes) -> dict[str, Any] | None:
    failure = json.loads(body).get("failure")
    if not isinstance(failure, dict):
        return None
    keys = ("errtype", "message", "backtrace", "retry_count", "failed_at", "next_at")
    return {key: failure[key] for key in keys if key in failure}


def _encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


class Results(Middleware):
    """The results subsystem: pending records at push, outcomes, lookups and waits.

    Args:
        store: the server's store; the records live there.
        max_bytes: the size limit of one result (bytes of JSON).
    """

    reads_custom_only = True

    def __init__(self, store: Store, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._unwritten: dict[str, bytes] = {}
        """Outcomes whose store write has not returned yet, by jid."""
        self.ending: set[str] = set()
        """Jids whose ACK, FAIL or expired reservation this server is handling: the job
        may have left its reservation before its outcome is recorded (RESULT: ``working``)."""
        self._background: set[asyncio.Future[None]] = set()
        self._counted: dict[str, int] = {}
        self._writing: list[dict[str, int]] = []
        self._counting = False

    # -- writing -------------------------------------------------------------------------

    async def check_push(self, job: dict[str, Any], now: float) -> None:
        """Refuse a malformed ``result_ttl`` (see :func:`result_ttl`); no record is written."""
        result_ttl(job)

    async def push(self, job: dict[str, Any], now: float) -> None:
        """Refuse a malformed ``result_ttl`` (see :func:`result_ttl`); :meth:`storing`
        writes the record."""
        result_ttl(job)

    async def storing(self, jobs: Sequence[dict[str, Any]], now: float) -> None:
        """Write the ``pending`` record of each job that asks for a result, and return once
        they are durable: the manager stores the jobs after that, so a fast worker's
        outcome always lands after the record and is never overwritten by it."""
        await self.expect(jobs, now)

    async def expect(self, jobs: Iterable[dict[str, Any]], now: float) -> None:
        """Write the ``pending`` record of each validated job that asks for a result
        (a job about to be stored, or a chain's step to be pushed later, so that a RESULT
        wait on its jid waits instead of answering ``unknown`` at once); return once they
        are durable. The writes run together, so that they can share the store's commits.

        The caller must call it before anything that can lead to the job's outcome is
        stored: a record written later could replace that outcome with ``pending``.
        """
        writes = [self._pending(job, now) for job in jobs if result_ttl(job) is not None]
        if writes:
            await asyncio.gather(*writes)

    async def _pending(self, job: dict[str, Any], now: float) -> None:
        doc = {"state": "pending", "queue": job.get("queue"), "jobtype": job.get("jobtype")}
        doc.update(_job_fields(job), enqueued_at=format_time(now))
        await self.store.put_record(RECORD + job["jid"], _encode(doc), PENDING_TTL, now)

    def check(self, value: bytes) -> None:
        """Refuse a result over the size limit, before anything is done.

        Raises:
            ResultTooLargeError: ``value`` is longer than :attr:`max_bytes`.
        """
        if len(value) > self.max_bytes:
            raise ResultTooLargeError(
                f"result is {len(value)} bytes, over the limit of {self.max_bytes} bytes"
            )

    async def succeeded(self, reservation: Reservation, value: bytes | None, now: float) -> None:
        """Record a job's success with the JSON ``value`` its worker returned (if it asked)."""
        entry = reservation.entry
        asked = _asked(entry.body)
        if asked is not None:
            job, ttl = asked
            # The value is spliced in as sent (the handler checked it is JSON).
            record = _encode(self._finished("succeeded", reservation, job, now))
            record = record[:-1] + b',"result":' + (value or b"null") + b"}"
            self._keep(entry.jid, record, ttl, now, "stored")
        self._wake(entry.jid)

    def _keep(self, jid: str, record: bytes, ttl: float, now: float, counter: str) -> None:
        # Like the ACK itself, an outcome need not be durable before the reply (a crash
        # before its commit redelivers the job, whose run writes it again): it is written in
        # the background and served from memory meanwhile, so RESULT sees it at once.
        self._unwritten[jid] = record
        self._counted[counter] = self._counted.get(counter, 0) + 1
        self._start(self._write(jid, record, ttl, now))
        if not self._counting:  # counters go to the store in one write per moment
            self._counting = True
            self._start(self._write_counts())

    def _start(self, write: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(write)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _write(self, jid: str, record: bytes, ttl: float, now: float) -> None:
        try:
            await self.store.put_record(RECORD + jid, record, ttl, now)
        except Exception:
            log.exception("could not store the outcome of job %s", jid)
        finally:
            if self._unwritten.get(jid) is record:
                del self._unwritten[jid]

    async def _write_counts(self) -> None:
        await asyncio.sleep(COUNT_EVERY)
        counted, self._counted, self._counting = self._counted, {}, False
        self._writing.append(counted)
        try:
            await self.store.add_counts(STATS_KEY, counted)
        except Exception:
            log.exception("could not store the results counters %s", counted)
        finally:
            self._writing.remove(counted)

    async def failed_with(
        self,
        reservation: Reservation,
        placement: Placement | None,
        report: FailureReport,
        now: float,
    ) -> None:
        """Record a failure: a discarded or dead job's outcome is kept (if it asked)."""
        entry = reservation.entry
        asked = _asked(entry.body)
        if asked is not None and (placement is None or placement.set == "dead"):
            job, ttl = asked
            state = "failed" if placement is None else "dead"
            doc = self._finished(state, reservation, job, now)
            doc["error"] = {
                "errtype": report.errtype,
                "message": report.message,
                "backtrace": list(report.backtrace),
            }
            self._keep(entry.jid, _encode(doc), ttl, now, "failed")
        self._wake(entry.jid)

    def abandoned(
        self,
        job: dict[str, Any],
        reason: str,
        now: float,
        errtype: str = "ChainEnded",
        state: str = "failed",
        backtrace: list[Any] | None = None,
    ) -> None:
        """Record that a validated job will not run to its end (a chain's later step, once
        its chain ended; a job deleted unrun, killed or expired): if it asked for a result,
        its record becomes ``state`` (``failed`` or ``dead``) with ``errtype``, ``reason``
        and ``backtrace``, and waits on it end."""
        ttl = result_ttl(job)
        if ttl is None:
            return
        doc = {"state": state, "queue": job.get("queue"), "jobtype": job.get("jobtype")}
        doc.update(_job_fields(job), finished_at=format_time(now))
        doc["error"] = {"errtype": errtype, "message": reason, "backtrace": backtrace or []}
        self._keep(job["jid"], _encode(doc), ttl, now, "failed")
        self._wake(job["jid"])

    def hears_ended(self, body: bytes) -> bool:
        """A job that asked for a result must be heard of when it ends without a worker."""
        return MARKER in body

    async def ended(self, entry: Entry, ending: Ending, now: float) -> None:
        """A job ended without a worker's word (Werk's rule): if it asked for a result and
        its record is not final yet, it becomes ``failed`` with errtype ``Deleted`` or
        ``Expired``, or, killed, ``dead`` with its last error (errtype ``Killed`` when it
        never failed), so that a wait on it ends instead of running out."""
        asked = _asked(entry.body)
        if asked is None:
            return
        record = await self._record(entry.jid, now)
        if record.get("state") in FINAL:
            return  # it died (or ended) before: its record already says how
        job, _ = asked
        reason = f"the job {ending.outcome}"
        if ending.kind != "killed":
            self.abandoned(job, reason, now, errtype=ending.errtype)
            return
        last = _error(entry.body) or {}
        errtype, message, trace = last.get("errtype"), last.get("message"), last.get("backtrace")
        if not isinstance(errtype, str) or not isinstance(message, str):
            errtype, message, trace = ending.errtype, reason, []
        trace = trace if isinstance(trace, list) else []
        self.abandoned(job, message, now, errtype=errtype, state="dead", backtrace=trace)

    @staticmethod
    def _finished(
        state: str, reservation: Reservation, job: dict[str, Any], now: float
    ) -> dict[str, Any]:
        entry = reservation.entry
        return {
            "state": state,
            "queue": entry.queue,
            "jobtype": entry.jobtype,
            **_job_fields(job),
            "wid": reservation.wid,
            "enqueued_at": format_time(reservation.enqueued_at),
            "started_at": format_time(reservation.reserved_at),
            "finished_at": format_time(now),
        }

    def forget(self) -> None:
        """Drop what is held in memory (after FLUSH deleted the records and counters)."""
        self._unwritten.clear()
        self._counted.clear()

    async def flush(self) -> None:
        """Wait for the outcomes being written in the background (tests, shutdown)."""
        if self._background:
            await asyncio.gather(*list(self._background))

    async def counts(self) -> dict[str, int]:
        """Return how many outcomes were stored since the last FLUSH: ``succeeded``
        (with their result) and ``failed`` (discarded or dead, with their error)."""
        counts = await self.store.add_counts(STATS_KEY, {})
        for unwritten in (self._counted, *self._writing):  # this server's, not stored yet
            for name, count in unwritten.items():
                counts[name] = counts.get(name, 0) + count
        return {"succeeded": counts.get("stored", 0), "failed": counts.get("failed", 0)}

    # -- reading -------------------------------------------------------------------------

    async def state(self, jid: str, now: float) -> dict[str, Any]:
        """Return RESULT's document for ``jid`` (see docs/protocol.md, "Job results")."""
        record = await self._record(jid, now)
        if record.get("state") in ("succeeded", "failed"):
            return {"jid": jid, **record}
        found = await self._live(jid)
        if found is not None:
            if found["state"] == "dead" and "error" not in found and "error" in record:
                found["error"] = record["error"]  # killed before it ever failed: "Killed"
            return found
        record = await self._record(jid, now)  # it may have ended while we looked
        state = record.pop("state", None)
        if state is None:
            return {"jid": jid, "state": "unknown"}
        if state == "pending" and jid in self.ending:
            state = "working"  # its outcome is being recorded, not queued again
        return {"jid": jid, "state": "queued" if state == "pending" else state, **record}

    async def _record(self, jid: str, now: float) -> dict[str, Any]:
        data = self._unwritten.get(jid) or await self.store.get_record(RECORD + jid, now)
        doc = json.loads(data) if data is not None else {}
        return doc if isinstance(doc, dict) else {}

    async def _live(self, jid: str) -> dict[str, Any] | None:
        store = self.store
        reservation = await store.reservation(jid)
        if reservation is not None:
            return {
                "jid": jid,
                "state": "working",
                "queue": reservation.entry.queue,
                "jobtype": reservation.entry.jobtype,
                **_job_fields(json.loads(reservation.entry.body)),
                "wid": reservation.wid,
                "enqueued_at": format_time(reservation.enqueued_at),
                "started_at": format_time(reservation.reserved_at),
            }
        for name, state in LIVE_SETS:
            item = await store.set_get(name, jid)
            if item is not None:
                doc: dict[str, Any] = {"jid": jid, "state": state, "queue": item.entry.queue}
                doc.update(jobtype=item.entry.jobtype, at=format_time(item.score))
                doc.update(_job_fields(json.loads(item.entry.body)))
                error = _error(item.entry.body)
                if error is not None:
                    doc["error"] = error
                return doc
        return None

    async def wait(
        self,
        jid: str,
        timeout: float,
        clock: Callable[[], float],
        alive: Callable[[], bool] | None = None,
    ) -> dict[str, Any]:
        """Return the state of ``jid`` once it is final (:data:`FINAL`), or its state when
        ``timeout`` seconds passed first, or when ``alive`` says the asker went away."""
        deadline = Deadline(min(timeout, MAX_WAIT))
        pauses = iter(RECHECK)
        pause = RECHECK[0]
        while True:
            with self._listen(jid) as woken:
                doc = await self.state(jid, clock())
                if doc["state"] in FINAL or deadline.remaining() <= 0 or (alive and not alive()):
                    return doc
                pause = next(pauses, pause)
                try:
                    async with asyncio.timeout(deadline.timer(pause)):
                        await woken
                except TimeoutError:
                    pass  # look again: the job may have ended on another server

    @contextmanager
    def _listen(self, jid: str) -> Iterator[asyncio.Future[None]]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(jid, set()).add(future)
        try:
            yield future
        finally:
            waiting = self._waiters.get(jid)
            if waiting is not None:
                waiting.discard(future)
                if not waiting:
                    del self._waiters[jid]

    def _wake(self, jid: str) -> None:
        for future in self._waiters.get(jid, ()):
            if not future.done():
                future.set_result(None)
