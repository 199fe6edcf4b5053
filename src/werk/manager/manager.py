"""The manager: push, fetch, ack, fail, queues, sets and mutations, on any store.

This is the only place that knows the job rules; the server's handlers parse a command,
call one method here and encode what it returns, and the web UI reads and acts through the
same methods. The manager never knows which backend it runs on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from werk.errors import CommandError, InvalidJSONError, JobTypeError, StorageError
from werk.job import (
    QUEUE_NAME,
    check,
    check_later,
    check_queue_name,
    scheduled_at,
)
from werk.manager.deadline import Deadline
from werk.manager.deletion import Deletions
from werk.manager.entries import failure_placement, make_entry, render
from werk.manager.middleware import Ending, Middleware
from werk.manager.results import Results
from werk.manager.retry import WORKER_SHUTDOWN, FailureReport
from werk.manager.selectors import JobFilter
from werk.manager.waiters import Waiters
from werk.storage.base import Entry, Placement, Reservation, Scored, SetName, Store

log = logging.getLogger("werk.manager")

FETCH_TIMEOUT = 2.0
"""How long a FETCH blocks for a job before answering nil, in seconds."""
UNDELIVERED = "the FETCH that reserved it had no client left to deliver it to"
"""The reason recorded on a job handed back because its FETCH's client had gone."""


def _queue_names(names: Sequence[str] | None) -> Sequence[str] | None:
    """Check the names given to QUEUE PAUSE, RESUME and REMOVE (``None``: every queue)."""
    for name in names or ():
        check_queue_name(name)
    return names


class Manager:
    """The job rules over a :class:`~werk.storage.base.Store`.

    Args:
        store: an opened store.
        clock: the wall clock in Unix seconds (tests pass a controlled one).
    """

    def __init__(
        self,
        store: Store,
        clock: Callable[[], float] = time.time,
        middleware: Sequence[Middleware] = (),
    ) -> None:
        self.store = store
        self.clock = clock
        self.middleware = list(middleware)
        # Per hook, only the middleware that overrides it: plain jobs skip the no-ops.
        self._hooks: dict[str, list[Middleware]] = {
            hook: [
                m
                for m in self.middleware
                if getattr(type(m), hook) is not getattr(Middleware, hook)
            ]
            for hook in (
                "check_push",
                "push",
                "storing",
                "fetch",
                "fetched",
                "acked",
                "returned",
                "failed",
                "ended",
            )
        }
        for hook in ("push", "storing"):
            # A job without ``custom`` (most jobs) meets only the hooks that read more.
            self._hooks[f"{hook}_plain"] = [m for m in self._hooks[hook] if not m.reads_custom_only]
        for feature in self.middleware:
            feature.attach(self)
        self.results = next((m for m in self.middleware if isinstance(m, Results)), None)
        """The job results subsystem, when its middleware is registered."""
        self._ending = set() if self.results is None else self.results.ending
        self.deletions = Deletions(store, self._hooks["ended"], lambda: self.clock())
        """Deletes, removes and kills jobs, telling the ``ended`` hooks (see
        :mod:`werk.manager.deletion`)."""
        self.waiters = Waiters()
        self._due_listeners: list[Callable[[float], None]] = []
        store.on_available(self.waiters.wake, self.waiters.waiting)

    def results_or_fail(self) -> Results:
        """Return the job results subsystem.

        Raises:
            CommandError: results are not enabled on this server (no Results middleware).
        """
        if self.results is None:
            raise CommandError("job results are not enabled on this server")
        return self.results

    def on_scheduled(self, listener: Callable[[float], None]) -> None:
        """Call ``listener(due)`` whenever a job is added to the scheduled or retry set."""
        self._due_listeners.append(listener)

    def _scheduled(self, due: float) -> None:
        for listener in self._due_listeners:
            listener(due)

    # -- push ----------------------------------------------------------------------

    async def _prepare(self, job: Any, now: float) -> tuple[dict[str, Any], Entry, float | None]:
        """Validate a pushed job and run the push middleware; return the validated job (what
        its entry's body holds), its entry and its due time if scheduled. The ``storing``
        hooks run next (:meth:`_storing`), then the store write.

        Raises:
            CommandError: the job breaks a rule, with Faktory's message, or middleware
                refused it.
        """
        job, due = check(job, now)
        for middleware in self._hooks["push" if job.get("custom") else "push_plain"]:
            await middleware.push(job, now)
        return job, make_entry(job), due

    async def check_push(self, job: Any, now: float) -> dict[str, Any]:
        """Apply every rule a PUSH of ``job`` would (its own and each middleware's
        ``check``) to a copy, storing and keeping nothing; return the validated copy.

        Raises:
            CommandError: with the message its PUSH would give.
        """
        trial = check_later(job, now)
        scheduled_at(trial, now)
        for middleware in self._hooks["check_push"]:
            await middleware.check_push(trial, now)
        return trial

    async def ended(self, entry: Entry, ending: Ending) -> None:
        """Tell the ``ended`` hooks that hear of it that a job left without a worker's word
        (an expired job dropped at fetch)."""
        await self.deletions.tell(entry, ending)

    async def _storing(self, jobs: Sequence[dict[str, Any]], now: float) -> None:
        # Before the store write: what these hooks write must precede any worker's outcome.
        custom = any(job.get("custom") for job in jobs)
        for middleware in self._hooks["storing" if custom else "storing_plain"]:
            await middleware.storing(jobs, now)

    async def push(self, job: Any) -> None:
        """Store one job: into its queue, or the scheduled set if ``at`` is ahead."""
        now = self.clock()
        job, entry, due = await self._prepare(job, now)
        await self._storing([job], now)
        if due is None:
            await self.store.enqueue([entry], now)
        else:
            await self.store.add("scheduled", [Scored(due, entry)])
            self._scheduled(due)

    async def push_bulk(self, jobs: Any) -> dict[str, str]:
        """Store many jobs in one write; return ``{jid: error}`` for the rejected ones.

        Raises:
            CommandError: not a list, or a job with a field of the wrong type (Faktory
                refuses the whole PUSHB then; nothing is stored).
        """
        if not isinstance(jobs, list):
            raise CommandError("PUSHB expects a JSON array of jobs")
        now = self.clock()
        errors: dict[str, str] = {}
        accepted: list[dict[str, Any]] = []
        ready: list[Entry] = []
        later: list[Scored] = []
        for index, job in enumerate(jobs):
            try:
                valid, entry, due = await self._prepare(job, now)
            except (JobTypeError, InvalidJSONError) as exc:
                # Faktory decodes the whole array first: one wrong type refuses them all.
                raise CommandError(f"invalid JSON: job {index}: {exc.message}") from exc
            except CommandError as exc:
                jid = job.get("jid") if isinstance(job, dict) else None
                # Faktory's text: the bare message, the code only for coded errors.
                text = exc.message if exc.code == "ERR" else exc.wire()
                errors[jid if isinstance(jid, str) else ""] = text
                continue
            accepted.append(valid)
            if due is None:
                ready.append(entry)
            else:
                later.append(Scored(due, entry))
        if accepted:
            await self._storing(accepted, now)
        if ready:
            await self.store.enqueue(ready, now)
        if later:
            await self.store.add("scheduled", later)
            self._scheduled(min(item.score for item in later))
        return errors

    # -- fetch, ack, fail -------------------------------------------------------------

    async def fetch(
        self,
        queues: Sequence[str],
        wid: str = "",
        timeout: float = FETCH_TIMEOUT,
        alive: Callable[[], bool] | None = None,
        waiting: Callable[[], None] | None = None,
    ) -> bytes | None:
        """Reserve the next job of ``queues`` (in order), waiting up to ``timeout`` seconds.

        ``alive`` tells whether the asking client is still there: a FETCH whose client
        went away while it waited takes no job, and a job reserved after it went away (a
        slow or cut store answering late) is handed back at once (:meth:`hand_back`), not
        left reserved for nobody until its reservation expires.
        ``waiting`` is called once when no job is there at once, before the FETCH waits.
        Returns the job JSON to hand to the worker, or ``None`` when none came.
        """
        if not queues:
            raise CommandError("must call fetch with at least one queue")
        reservation = await self._reserve(queues, wid)
        if reservation is not None:
            return await self._hand_out(reservation, alive)
        if waiting is not None:
            waiting()
        deadline = Deadline(timeout)
        while True:
            # Listen before looking again, so a push landing during the look is not missed.
            with self.waiters.listen(queues) as woken:
                if alive is not None and not alive():
                    return None
                reservation = await self._reserve(queues, wid)
                if reservation is not None:
                    return await self._hand_out(reservation, alive)
                if deadline.remaining() <= 0:
                    return None
                try:
                    async with asyncio.timeout(deadline.timer()):
                        await woken
                except TimeoutError:
                    return None

    async def _hand_out(
        self, reservation: Reservation, alive: Callable[[], bool] | None
    ) -> bytes | None:
        if alive is None or alive():
            return render(reservation.entry.body, reservation.enqueued_at)
        await self.hand_back(reservation.entry.jid, UNDELIVERED)
        return None

    async def hand_back(self, jid: str, reason: str) -> bool:
        """Put a reserved job whose reply never reached its worker back to run at once, as
        a worker's own hand-back at its shutdown does (a ``WorkerShutdown`` FAIL: the
        scheduled set, due now, no retry used, ``job["handed_back"]`` counts it).

        Returns ``False``, logging why, when the store could not take it back (still
        failing): the job then stays reserved until the reaper expires it.
        """
        try:
            await self.fail(jid, FailureReport(WORKER_SHUTDOWN, reason, []))
        except (CommandError, StorageError) as exc:
            log.error("could not hand back %s (%s): %s; it stays reserved", jid, reason, exc)
            return False
        log.info("handed back %s: %s", jid, reason)
        return True

    async def _reserve(self, queues: Sequence[str], wid: str) -> Reservation | None:
        while True:
            now = self.clock()
            allowed = queues
            for middleware in self._hooks["fetch"]:
                allowed = await middleware.fetch(allowed, wid, now)
            if not allowed:
                return None
            reservation = await self.store.fetch(allowed, now, wid)
            if reservation is None:
                return None
            if await self._keep(reservation, now):
                return reservation

    async def _keep(self, reservation: Reservation, now: float) -> bool:
        for middleware in self._hooks["fetched"]:
            if not await middleware.fetched(reservation, now):
                return False
        return True

    async def ack(self, jid: str, result: bytes | None = None) -> bool:
        """Acknowledge a job: release its reservation; return whether it had one (unknown
        jids are fine: ``False``).

        ``result`` is the JSON value the worker returned (Werk's ACK extension); it is
        kept when the job asked for it (see :mod:`werk.manager.results`).

        Raises:
            ResultTooLargeError: ``result`` is over the size limit; nothing was done.
        """
        if result is not None and self.results is not None:
            self.results.check(result)
        now = self.clock()
        self._ending.add(jid)
        try:
            reservation = await self.store.ack(jid, now)
            if reservation is not None:
                if self.results is not None:
                    await self.results.succeeded(reservation, result, now)
                for middleware in self._hooks["acked"]:
                    await middleware.acked(reservation, now)
                for middleware in self._hooks["returned"]:
                    await middleware.returned(reservation, result, now)
        finally:
            self._ending.discard(jid)
        return reservation is not None

    async def fail(self, jid: str, report: FailureReport) -> None:
        """Record a failed execution and send the job to retries, dead, or nowhere (a job
        handed back at a worker's shutdown: the scheduled set, due now).

        Raises:
            CommandError: ``jid`` holds no reservation.
        """
        now = self.clock()
        reservation = await self.store.reservation(jid)
        placement = None if reservation is None else self._placement(reservation, report, now)
        self._ending.add(jid)
        try:
            if reservation is None or not await self.store.fail(jid, now, placement):
                raise CommandError(f"Job not found {jid}")
            await self._failed(reservation, placement, report, now)
        finally:
            self._ending.discard(jid)

    async def _failed(
        self,
        reservation: Reservation,
        placement: Placement | None,
        report: FailureReport,
        now: float,
    ) -> None:
        if self.results is not None:
            await self.results.failed_with(reservation, placement, report, now)
        for middleware in self._hooks["failed"]:
            await middleware.failed(reservation, placement, now)

    def _placement(
        self, reservation: Reservation, report: FailureReport, now: float
    ) -> Placement | None:
        placement = failure_placement(reservation, report, now)
        if placement is not None and placement.set != "dead":
            self._scheduled(placement.score)
        return placement

    async def reap_reservations(
        self, limit: int = 100, spare_before: float | None = None
    ) -> list[Entry]:
        """Turn expired reservations into failures (``ReservationExpired``); return the
        jobs reaped (at most ``limit``).

        Reservations made before ``spare_before`` are left alone (the server's grace after
        a start, see :data:`werk.server.tasks.RESTART_GRACE`). One job that fails to be
        reaped is logged and skipped: the others still are.
        """
        now = self.clock()
        report = FailureReport("ReservationExpired", "Faktory job reservation expired", [])
        reaped: list[Entry] = []
        for reservation in await self.store.expired(now, limit):
            if spare_before is not None and reservation.reserved_at < spare_before:
                continue
            jid = reservation.entry.jid
            self._ending.add(jid)
            try:
                placement = self._placement(reservation, report, now)
                if not await self.store.expire(jid, now, placement):
                    continue
                reaped.append(reservation.entry)
                await self._failed(reservation, placement, report, now)
            except Exception:
                log.exception("could not reap the reservation of %s", jid)
            finally:
                self._ending.discard(jid)
        return reaped

    async def extend(self, jid: str, until: float) -> bool:
        """Lengthen a reservation (never shortens it); ``False`` if there is none."""
        return await self.store.extend(jid, until)

    # -- scheduled and retry sets ---------------------------------------------------------

    async def move_due(self, name: SetName, batch: int = 1000) -> int:
        """Move every due job of a set into its queue; return how many moved."""
        moved = 0
        while True:
            count = await self.store.move_due(name, self.clock(), batch)
            moved += count
            if count < batch:
                return moved

    async def next_due(self) -> float | None:
        """Return the earliest due time across the scheduled and retry sets."""
        times = [await self.store.next_due(name) for name in ("scheduled", "retries")]
        due = [t for t in times if t is not None]
        return min(due) if due else None

    async def purge_dead(self, limit: int = 1000) -> int:
        """Delete dead jobs whose 180 days are over."""
        return await self.store.remove_before("dead", self.clock(), limit)

    # -- queues ---------------------------------------------------------------------

    async def pause(self, names: Sequence[str] | None) -> None:
        """Pause queues (``None``: all known queues).

        Raises:
            CommandError: a name breaks Faktory's rule for queue names (nothing changes).
        """
        await self.store.pause(_queue_names(names))

    async def resume(self, names: Sequence[str] | None) -> None:
        """Resume queues (``None``: all); raises as :meth:`pause`."""
        await self.store.resume(_queue_names(names))

    async def remove(self, names: Sequence[str] | None) -> None:
        """Delete queues and their jobs (``None``: all), each job reported to the ``ended``
        hooks as deleted from its queue; raises as :meth:`pause`."""
        await self.deletions.remove_queues(_queue_names(names))

    async def delete_queued(self, queue: str, jids: Sequence[str]) -> int:
        """Delete the listed jobs from a queue if they are still waiting there; return how
        many were deleted (a job already fetched, scheduled or gone is not touched). The
        ``ended`` hooks hear of those they ask for (:mod:`werk.manager.deletion`)."""
        return await self.deletions.from_queue(queue, jids)

    async def set_remove(self, target: SetName, jids: Sequence[str] | None) -> int:
        """Remove the listed jobs (``None``: all) from a set; return how many were removed.
        The ``ended`` hooks hear of those they ask for (:mod:`werk.manager.deletion`)."""
        return await self.deletions.from_set(target, jids)

    async def latency(self, names: Sequence[str]) -> dict[str, float]:
        """Return, per queue, the age in seconds of its oldest job (0 when empty)."""
        now = self.clock()
        # A name breaking the queue rule holds no job: 0, as an unknown queue, without
        # asking the store (PostgreSQL cannot even look up a name holding NUL).
        valid = [name for name in names if QUEUE_NAME.match(name)]
        oldest = await self.store.oldest_enqueued(valid) if valid else {}
        ages = {name: round(max(0.0, now - t), 6) if t else 0 for name, t in oldest.items()}
        return {name: ages.get(name, 0) for name in names}

    # -- mutate -----------------------------------------------------------------------

    async def mutate(self, cmd: str, target: SetName, flt: JobFilter | None) -> int:
        """Apply a MUTATE command to a set; return how many jobs it touched.

        ``flt`` comes from :func:`~werk.manager.selectors.parse_filter`; ``None`` (or a
        filter with no criterion) means the whole set. ``clear`` always means the whole
        set, so it refuses a filter with criteria rather than ignoring it.

        Raises:
            CommandError: ``clear`` with a filter that names jobs.
        """
        if cmd == "clear" and flt is not None and not flt.selects_all:
            raise CommandError("clear empties the whole set and takes no filter: use discard")
        jids = None if cmd == "clear" else await self._select(target, flt)
        if cmd in ("clear", "discard"):
            return await self.set_remove(target, jids)
        if cmd == "requeue":
            return await self.deletions.requeue(target, jids)
        return await self.deletions.kill(target, jids)

    async def _select(self, target: SetName, flt: JobFilter | None) -> list[str] | None:
        if flt is None or flt.selects_all:
            return None
        if flt.regexp is None and flt.jobtype is None:
            return sorted(flt.jids or ())
        items = await self.store.set_match(target, flt.regexp)
        return [
            item.entry.jid
            for item in items
            if (flt.jobtype is None or item.entry.jobtype == flt.jobtype)
            and (flt.jids is None or item.entry.jid in flt.jids)
        ]

    async def flush(self) -> None:
        """Delete every job, queue and counter (worker processes stay)."""
        await self.store.flush()
        if self.results is not None:
            self.results.forget()
