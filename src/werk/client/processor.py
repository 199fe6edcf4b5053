"""The worker's concurrent loops: one :class:`Processor` per slot, and the heartbeat.

A processor owns one connection (a FETCH blocks it for up to ~2 s, so fetchers cannot
share one) and loops: FETCH, run the job, then send the job's ACK or FAIL *pipelined* with
the next FETCH in a single write, reading the two replies in order. A report that could
not be delivered (the server went away) is kept and sent first after reconnecting, so a
restart loses nothing. A report the server refused for a passing reason (``-ERR storage
error``: its store was cut, frozen or restarting) is sent again, with backoff, until it lands
or the job's reservation may be over (half its reserve_for later); only a definitive
refusal is logged and dropped.
A job's last FAIL (:class:`~werk.client.exhausted.LastFail`) goes
alone, and its retries-exhausted hooks run in the slot once the server accepted it, before
the next FETCH. The heartbeat uses a connection of its own.

A processor that fails (a bug in the worker, never a job's exception: those are FAILed) is
logged at CRITICAL with its traceback. When the failure came from running or reporting a
job, that job is FAILed with it (errtype the error's class name, using a retry like any
failure) and the processor goes on; anywhere else, the job it holds is FAILed the same way,
the processor ends with :class:`WorkerCrashedError` and the worker stops gracefully, then
raises it (``werk worker`` exits 70).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from werk.client.client import CALLS
from werk.client.connection import CONNECTION_ERRORS, AsyncConnection
from werk.client.exhausted import LastFail, call_hooks
from werk.client.joberrors import describe
from werk.client.proto import Call
from werk.client.reconnect import Connector, GiveUpError
from werk.client.recycling import Recycling
from werk.client.reports import ResultAck, crash_call, shutdown_call
from werk.client.reservations import DEFAULT_RESERVE_FOR
from werk.client.results import (
    RESULT_REFUSED_ERRTYPE,
    RESULT_TOO_LARGE_ERRTYPE,
    ResultRefusedError,
)
from werk.client.runner import Runner
from werk.client.state import WorkerHost
from werk.errors import CommandError, ResultTooLargeError, WerkError, is_temporary

__all__ = ["RESULT_TOO_LARGE_ERRTYPE", "Processor", "WorkerCrashedError", "heartbeat"]

log = logging.getLogger("werk.worker")

GONE = "Job not found"
"""How a server's refusal of an ACK or FAIL begins when the job is not reserved (any more):
its reservation expired, so the job is queued again and nothing is to be redone."""
RESEND_FIRST = 0.5
"""Seconds before a report refused for a storage error is sent again (then doubling)."""
RESEND_MAX = 10.0
"""The longest wait between two sends of a report refused for a storage error."""
CRASH_REPORT_TIMEOUT = 5.0
"""Seconds a crashed processor tries to FAIL the job it held before giving up on it."""


class WorkerCrashedError(WerkError):
    """A processor of a running worker failed (a bug in the worker, not a job's error): the
    worker stopped gracefully, and the job that processor held was FAILed with the error."""


def _log_unreserved_ack(payload: bytes, resent: bool) -> None:
    """Say that a job was done but the server no longer held its reservation (its ACK
    carried ``"expect":"reserved"``, so a Werk server said so instead of ``+OK``).

    An ACK ``resent`` after a lost connection may have got through the first time (the
    connection broke while its FETCH waited): that is only an info line."""
    try:
        jid = str(json.loads(payload)["jid"])
    except (ValueError, KeyError, TypeError):
        jid = payload[:80].decode("utf-8", "replace").strip()
    if resent:
        log.info(
            "job %s: its ACK, sent again after a lost connection, found no reservation: the"
            " first one most likely got through",
            jid,
            extra={"jid": jid},
        )
        return
    log.warning(
        "job %s: done, but the server no longer held its reservation: it had expired"
        " (past the job's reserve_for, or while the server was unreachable) and the job was"
        " taken back as failed (ReservationExpired), so it runs again if it has retries"
        " left",
        jid,
        extra={"jid": jid},
    )


class Processor:
    """One fetch-run-report loop with its own connection."""

    def __init__(
        self,
        worker: WorkerHost,
        runner: Runner,
        connector: Connector,
        index: int,
        recycling: Recycling | None = None,
    ) -> None:
        self.worker = worker
        self.runner = runner
        self.connector = connector
        self.index = index
        self.recycling = recycling or Recycling()
        """Counts the jobs that ran, and says whether one more FETCH may go out."""
        self.job: dict[str, Any] | None = None
        self.abandon = False
        self.lingering = False
        """Whether a timed-out job's thread still runs (the slot is busy, nothing to report)."""
        self.unreported = False
        """Whether a finished job's ACK or FAIL is still to be sent."""
        self.held: dict[str, Any] | None = None
        """The job fetched last, until the server answered its ACK or FAIL: the one a crash
        of this processor FAILs."""
        self._conn: AsyncConnection | None = None
        self.resent = False
        """Whether the report being sent was sent before, on a connection that broke."""
        self._reserve_for = float(DEFAULT_RESERVE_FOR)
        """The ``reserve_for`` of the last job fetched: how long its report is sent again."""

    async def run(self) -> None:
        """Loop until the worker stops; report the last job before returning.

        Raises:
            WorkerCrashedError: this processor failed (logged at CRITICAL; the job it held
                was FAILed with the error).
            AuthenticationError: the server refused the password (as do other fatal
                connection errors: the connector logged them).
        """
        try:
            await self._loop()
        except Exception as exc:
            if self.connector.failed:  # a wrong password, say: already logged
                raise
            await self._crashed(exc)
            raise WorkerCrashedError(
                f"processor {self.index} crashed: {type(exc).__name__}: {describe(exc)}"
            ) from exc

    async def _loop(self) -> None:
        worker = self.worker
        report: Call[None] | None = None
        while True:
            self.unreported = report is not None
            fetching = self._claim_fetch(report)
            if report is None and not fetching:
                if worker.stopping:
                    break
                await worker.wait_state_change()
                continue
            try:
                conn = await self._connection()
                if isinstance(report, LastFail):  # alone, then its hooks
                    outcome = (await conn.pipeline([report]))[0]
                    last, report, self.held = report, None, None
                    self.resent = False
                    await self._delivered(last, outcome)
                    continue
                calls: list[Call[Any]] = [report] if report is not None else []
                if fetching:
                    calls.append(worker.fetch_call())
                # a job's result ACK logs its "done" line as soon as the server accepts it,
                # not once the FETCH sent with it returns (up to ~2 s later)
                accepted = report.answered if type(report) is ResultAck else None
                results = await conn.pipeline(calls, accepted)
            except CONNECTION_ERRORS as exc:
                self._lost(exc, claimed=fetching)
                self.resent = report is not None  # it may have got through all the same
                continue
            except GiveUpError:
                if report is not None:
                    self._unreported(report)
                break
            if report is not None:
                sent, report = report, None
                if results[0] is not None:  # an accepted ACK or FAIL answers None
                    await self._refused(sent, results[0])
                self.held = None
                self.resent = False
            if fetching:
                report = await self._handle_fetched(results[-1])
        self.unreported = False
        self.close()

    def _lost(self, exc: BaseException, *, claimed: bool = False) -> None:
        """Record a failed connection; a FETCH claimed on it brought no job."""
        self.connector.lost(f"processor {self.index}", exc, self._conn)
        if claimed:
            self.recycling.unclaim()

    def _claim_fetch(self, report: Call[None] | None) -> bool:
        """Whether to FETCH now (along with ``report``): not while quiet or stopping, not
        with a last FAIL (it goes alone), not past the worker's ``max_jobs``."""
        if not self.worker.fetching or isinstance(report, LastFail):
            return False
        return self.recycling.claim()

    @staticmethod
    def _unreported(report: Call[None]) -> None:
        """Log an ACK or FAIL the worker gave up delivering (the server stayed away)."""
        verb, _, payload = report.data.partition(b" ")
        try:
            jid = str(json.loads(payload)["jid"])
        except (ValueError, KeyError, TypeError):
            jid = "?"
        log.error(
            "could not send %s for job %s: the server stayed unreachable; once its reservation"
            " expires (its reserve_for, 30 minutes by default) the server fails the job"
            " (ReservationExpired) and runs it again if it has retries left",
            verb.decode("ascii", "replace"),
            jid,
            extra={"jid": jid},
        )

    async def _delivered(self, report: Call[None], outcome: Any) -> None:
        """Handle the server's answer to a report sent alone: log a refusal, or call the
        hooks of an accepted last FAIL (a refused one, after the job's reservation expired,
        was not the job's last failure: the reaper's was)."""
        outcome = await self._resend(report, outcome)
        self._check_report(report, outcome)
        if outcome is None and isinstance(report, LastFail):
            await call_hooks(report, self.runner.threads)

    async def _refused(self, report: Call[None], outcome: Any) -> None:
        outcome = await self._resend(report, outcome)
        fail = self._check_report(report, outcome)
        if fail is None:
            return
        # If this FAIL is lost too, the job stays reserved until it expires, then retries.
        try:
            conn = await self._connection()  # a new one if it was lost while resending
            await self._delivered(fail, (await conn.pipeline([fail]))[0])
        except CONNECTION_ERRORS as exc:
            self._lost(exc)
        except GiveUpError:
            self._unreported(fail)

    async def _connection(self) -> AsyncConnection:
        if self._conn is None or self._conn.closed:
            self._conn = await self.connector.connect(f"processor {self.index}")
        return self._conn

    async def _resend(self, report: Call[None], outcome: Any) -> Any:
        """Send ``report`` again, with backoff, while the server refuses it for a passing
        reason (:func:`~werk.errors.is_temporary`); return the server's last answer.

        Gives up, returning the temporary refusal, half the job's ``reserve_for`` after the
        first refusal (the keeper renews a reservation each time half of it has passed, and
        no more once the job ended, so the reservation may end from then on: a report that
        landed later could fail another worker's run of the job), or when the server stays
        unreachable; the server's reaper then fails the job and it runs again.
        """
        if not (isinstance(outcome, CommandError) and is_temporary(outcome)):
            return outcome
        verb, what = _described(report)
        log.warning("the server could not store %s %s (%s); sending it again", verb, what, outcome)
        give_up = time.monotonic() + self._reserve_for / 2
        delay = RESEND_FIRST
        while isinstance(outcome, CommandError) and is_temporary(outcome):
            if time.monotonic() + delay > give_up:
                return outcome
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESEND_MAX)
            try:
                conn = await self._connection()
                outcome = (await conn.pipeline([report]))[0]
            except CONNECTION_ERRORS as exc:
                self._lost(exc)
                self.resent = True  # it may have got through all the same
            except GiveUpError:
                return outcome
        if outcome is None:
            log.info("the server stored %s %s at last", verb, what)
        return outcome

    def _check_report(self, report: Call[None], outcome: Any) -> Call[None] | None:
        """Log a refused ACK or FAIL (saying why); return the FAIL to send for an ACK whose
        result the server refused (too large, too deep, not JSON: the job is still reserved
        then)."""
        if not isinstance(outcome, CommandError):
            return None
        if is_temporary(outcome):
            log.error(
                "gave up sending %s %s: the server could not store it (%s) before the job's"
                " reservation could end (half its reserve_for); the server fails the job"
                " (ReservationExpired) and runs it again if it has retries left",
                *_described(report),
                outcome,
            )
            return None
        if isinstance(report, ResultAck) and not outcome.message.startswith(GONE):
            too_large = isinstance(outcome, ResultTooLargeError)
            errtype = RESULT_TOO_LARGE_ERRTYPE if too_large else RESULT_REFUSED_ERRTYPE
            error = ResultRefusedError(errtype, f"the server refused the result: {outcome}")
            return self.runner.result_refused(report.job, error, report.elapsed)
        verb, _, rest = report.data.partition(b" ")
        if verb == b"ACK" and outcome.message.startswith(GONE):
            _log_unreserved_ack(rest, self.resent)
            return None
        log.warning(
            "server refused %s %s: %s (%s)",
            *_described(report),
            outcome,
            "the job's reservation had expired: the server already failed it"
            if outcome.message.startswith(GONE)
            else "a definitive refusal: the report is dropped",
        )
        return None

    async def _handle_fetched(self, outcome: Any) -> Call[None] | None:
        if outcome is None or isinstance(outcome, CommandError) or self.worker.stopping:
            self.recycling.unclaim()  # no job runs on this FETCH
        if outcome is None:
            return None
        if isinstance(outcome, CommandError):
            log.error("FETCH failed: %s", outcome)
            await asyncio.sleep(1.0)
            return None
        job: dict[str, Any] = outcome
        self.held = job
        if self.worker.stopping:
            return shutdown_call(job, "fetched while the worker was stopping")
        return await self._execute(job)

    async def _execute(self, job: dict[str, Any]) -> Call[None] | None:
        self.job = job  # also how the reservation keeper finds the job
        reserve_for = job.get("reserve_for")
        if isinstance(reserve_for, int) and reserve_for > 0:
            self._reserve_for = float(max(reserve_for, 60))
        else:
            self._reserve_for = float(DEFAULT_RESERVE_FOR)
        try:
            report, lingering = await self.runner.run(job)
            # counted whatever the outcome; a limit reached stops the worker, whose
            # shutdown then waits for this job's report (self.unreported)
            self.recycling.job_ran()
        except asyncio.CancelledError:
            if not self.abandon:
                raise
            self._uncancel()
            self.worker.abandoned += 1
            jid = job["jid"]
            log.warning(
                "job %s %s: handing it back, still running at the shutdown deadline",
                jid,
                job.get("jobtype"),
                extra={"jid": jid, "jobtype": job.get("jobtype")},
            )
            return shutdown_call(job, "worker stopped while the job was still running")
        except Exception as exc:  # the worker's bug: FAIL the job with it, go on
            self.recycling.job_ran()
            log.critical(
                "job %s %s: the worker failed to run or report it (a bug in werk): %s: %s;"
                " FAILing the job with this error, the worker goes on",
                job.get("jid"),
                job.get("jobtype"),
                type(exc).__name__,
                describe(exc),
                exc_info=exc,
                extra={"jid": job.get("jid"), "jobtype": job.get("jobtype")},
            )
            return crash_call(job, exc)
        finally:
            self.job = None
        if lingering is None:
            return report
        return await self._linger(job, report, lingering)

    async def _linger(
        self, job: dict[str, Any], report: Call[None], thread: asyncio.Future[Any]
    ) -> Call[None] | None:
        """Send the FAIL of a timed-out job whose thread has not unwound yet (a call outside
        Python holds it), then keep this slot busy until its thread ends."""
        try:
            conn = await self._connection()
            outcome = (await conn.pipeline([report]))[0]
        except CONNECTION_ERRORS as exc:
            self._lost(exc)
            return report  # sent first after reconnecting
        except GiveUpError:
            return None
        self.held = None
        await self._delivered(report, outcome)
        started = time.monotonic()
        self.lingering = True
        try:
            await asyncio.shield(thread)
        except asyncio.CancelledError:
            if not self.abandon:
                raise
            self._uncancel()
            self.worker.abandoned += 1
            return None
        except Exception:  # the function's error after its timeout: already reported
            pass
        finally:
            self.lingering = False
        log.warning(
            "job %s %s: its thread returned %.1fs after its FAIL; the slot is free again",
            job["jid"],
            job.get("jobtype"),
            time.monotonic() - started,
            extra={"jid": job["jid"], "jobtype": job.get("jobtype")},
        )
        return None

    async def _crashed(self, exc: Exception) -> None:
        """Log this processor's failure, and FAIL the job it held with the error (once the
        server answers, within :data:`CRASH_REPORT_TIMEOUT` seconds: else the job runs again
        once its reservation expires)."""
        job, self.held = self.held, None
        log.critical(
            "processor %d crashed (a bug in werk): %s: %s; the worker stops%s",
            self.index,
            type(exc).__name__,
            describe(exc),
            f", FAILing job {job.get('jid')} with this error" if job is not None else "",
            exc_info=exc,
        )
        self.close()  # in an unknown state: the FAIL goes on a new connection
        if job is None:
            return
        try:
            async with asyncio.timeout(CRASH_REPORT_TIMEOUT):
                conn = await self._connection()
                outcome = (await conn.pipeline([crash_call(job, exc)]))[0]
        except Exception as failure:  # a timeout, the server away: nothing more to try
            log.error(
                "could not FAIL job %s after the crash (%s: %s): it runs again once its"
                " reservation expires",
                job.get("jid"),
                type(failure).__name__,
                describe(failure),
                extra={"jid": job.get("jid")},
            )
        else:
            if isinstance(outcome, CommandError):
                log.warning("server refused the FAIL of job %s: %s", job.get("jid"), outcome)
        finally:
            self.close()

    @staticmethod
    def _uncancel() -> None:
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()

    def close(self) -> None:
        """Close the connection (END)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


async def heartbeat(worker: WorkerHost, connector: Connector) -> None:
    """BEAT every ``worker.heartbeat_interval`` seconds (and on every state change).

    The BEAT announces the worker's own state (``quiet``/``terminate``) and obeys the
    server's answer. An ``unknown worker`` error (the server restarted and forgot us) or a
    lost connection makes it reconnect, which registers the worker again. Once the worker
    is stopping, a refused BEAT ends the heartbeat quietly (its processors already said
    goodbye, so the server may have forgotten it).
    """
    conn: AsyncConnection | None = None
    try:
        while True:
            try:
                if conn is None or conn.closed:
                    conn = await connector.connect("heartbeat")
                call = CALLS.beat(worker.wid, worker.announced_state, worker.rss_kb())
                state = await conn.call(call)
                worker.obey(state)
            except CommandError as exc:
                if conn is not None:
                    conn.close()
                if worker.stopping or connector.failed:  # failed: a wrong password, say
                    log.debug("BEAT refused while stopping: %s", exc)
                    return
                log.info("BEAT refused: %s; registering again", exc)
            except CONNECTION_ERRORS as exc:
                connector.lost("heartbeat", exc, conn)
            except GiveUpError:
                return
            await worker.wait_state_change(worker.heartbeat_interval)
    finally:  # the worker stopped (or gave up): its process record loses this connection
        if conn is not None and not conn.closed:
            conn.close()


def _described(report: Call[None]) -> tuple[str, str]:
    """A report's verb and the start of its payload, for log lines."""
    verb, _, rest = report.data.partition(b" ")
    return verb.decode("ascii", "replace"), rest[:80].decode("utf-8", "replace").strip()
