"""The worker's concurrent loops: one :class:`Processor` per slot, and the heartbeat.

A processor owns one connection (a FETCH blocks it for up to ~2 s, so fetchers cannot
share one) and loops: FETCH, run the job, then send the job's ACK or FAIL *pipelined* with
the next FETCH in a single write, reading the two replies in order. A report that could
not be delivered (the server went away) is kept and sent first after reconnecting, so a
restart loses nothing. The heartbeat uses a connection of its own.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from werk.client.backoff import backoff_delays
from werk.client.client import CALLS
from werk.client.connection import CONNECTION_ERRORS, AsyncConnection
from werk.client.proto import Call
from werk.client.runner import Runner, shutdown_call
from werk.client.state import WorkerHost
from werk.errors import AuthenticationError, CommandError

log = logging.getLogger("werk.worker")


class GiveUpError(Exception):
    """The worker is past its shutdown deadline and stopped reconnecting."""


async def connect(worker: WorkerHost, give_up: asyncio.Event) -> AsyncConnection:
    """Open a consumer connection, retrying with backoff until ``give_up`` is set.

    Raises:
        AuthenticationError: the password is wrong (retrying cannot help).
        GiveUpError: ``give_up`` was set before a connection could be made.
    """
    delays = backoff_delays(0.05, 5.0)
    while not give_up.is_set():
        try:
            return await AsyncConnection.open(worker.address, worker.identity, worker.timeout)
        except AuthenticationError:
            raise
        except CONNECTION_ERRORS as exc:
            delay = next(delays)
            log.warning("cannot reach %s (%s); retrying in %.2fs", worker.address.url(), exc, delay)
            try:
                await asyncio.wait_for(give_up.wait(), delay)
            except TimeoutError:
                pass
    raise GiveUpError("stopped reconnecting at the shutdown deadline")


class Processor:
    """One fetch-run-report loop with its own connection."""

    def __init__(self, worker: WorkerHost, runner: Runner, index: int) -> None:
        self.worker = worker
        self.runner = runner
        self.index = index
        self.job: dict[str, Any] | None = None
        self.abandon = False
        self._conn: AsyncConnection | None = None

    async def run(self) -> None:
        """Loop until the worker stops; report the last job before returning."""
        worker = self.worker
        report: Call[None] | None = None
        while True:
            fetching = worker.fetching
            if report is None and not fetching:
                if worker.stopping:
                    break
                await worker.wait_state_change()
                continue
            try:
                conn = await self._connection()
                calls: list[Call[Any]] = [report] if report is not None else []
                if fetching:
                    calls.append(worker.fetch_call())
                results = await conn.pipeline(calls)
            except CONNECTION_ERRORS as exc:
                log.warning("processor %d lost its connection: %s", self.index, exc)
                continue
            except GiveUpError:
                if report is not None:
                    log.error("could not report job: %r; the server will expire it", report.data)
                break
            if report is not None:
                self._check_report(report, results[0])
                report = None
            if fetching:
                report = await self._handle_fetched(results[-1])
        self.close()

    async def _connection(self) -> AsyncConnection:
        if self._conn is None or self._conn.closed:
            self._conn = await connect(self.worker, self.worker.give_up)
        return self._conn

    @staticmethod
    def _check_report(report: Call[None], outcome: Any) -> None:
        if isinstance(outcome, CommandError):
            # FAIL after a reservation expired answers "Job not found": nothing to redo.
            log.warning("server refused %r: %s", report.data[:80], outcome)

    async def _handle_fetched(self, outcome: Any) -> Call[None] | None:
        if outcome is None:
            return None
        if isinstance(outcome, CommandError):
            log.error("FETCH failed: %s", outcome)
            await asyncio.sleep(1.0)
            return None
        job: dict[str, Any] = outcome
        if self.worker.stopping:
            return shutdown_call(job, "fetched while the worker was stopping")
        return await self._execute(job)

    async def _execute(self, job: dict[str, Any]) -> Call[None]:
        self.job = job
        try:
            return await self.runner.run(job)
        except asyncio.CancelledError:
            if not self.abandon:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            timeout = self.worker.shutdown_timeout
            self.worker.abandoned += 1
            log.warning("handing back job %s still running after %.1fs", job.get("jid"), timeout)
            return shutdown_call(job, f"worker stopped: job still running after {timeout}s")
        finally:
            self.job = None

    def close(self) -> None:
        """Close the connection (END)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


async def heartbeat(worker: WorkerHost) -> None:
    """BEAT every ``worker.heartbeat_interval`` seconds (and on every state change).

    The BEAT announces the worker's own state (``quiet``/``terminate``) and obeys the
    server's answer. An ``unknown worker`` error (the server restarted and forgot us) or a
    lost connection makes it reconnect, which registers the worker again.
    """
    conn: AsyncConnection | None = None
    while True:
        try:
            if conn is None or conn.closed:
                conn = await connect(worker, worker.give_up)
            call = CALLS.beat(worker.wid, worker.announced_state, worker.rss_kb())
            state = await conn.call(call)
            worker.obey(state)
        except CommandError as exc:
            log.warning("BEAT refused: %s; reconnecting", exc)
            if conn is not None:
                conn.close()
        except CONNECTION_ERRORS as exc:
            log.warning("heartbeat connection lost: %s", exc)
        except GiveUpError:
            return
        await worker.wait_state_change(worker.heartbeat_interval)
