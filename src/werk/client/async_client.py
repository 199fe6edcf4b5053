"""The asyncio client: :class:`AsyncClient`, a pool of :class:`AsyncConnection`.

The same commands as :class:`~werk.client.Client`, built by the same sans-IO core
(:mod:`werk.client.proto`); only the waiting differs. Stale pooled connections are
replaced once; new connections are retried with exponential backoff and jitter.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, TypeVar, Unpack

from werk.client.backoff import backoff_delays
from werk.client.client import CALLS
from werk.client.connection import (
    CONNECT_BACKOFF,
    CONNECTION_ERRORS,
    DEFAULT_TIMEOUT,
    AsyncConnection,
    ServerUnreachableError,
)
from werk.client.job import Job, batch_dict, job_dict
from werk.client.processes import ProcessInfo, processes_call
from werk.client.proto import Call, Identity
from werk.client.results import Deadline, JobState
from werk.client.sets import (
    PAGE_SIZE,
    JobsPage,
    SetEntry,
    SetName,
    Target,
    Where,
    jobs_call,
    mutate_calls,
)
from werk.client.url import ServerAddress, resolve

T = TypeVar("T")


class AsyncClient:
    """An asyncio client for Werk or any Faktory server; share it between tasks.

    Methods taking ``*names`` or ``*jids`` (``fetch``, ``pause_queues``, ``resume_queues``,
    ``remove_queues``, ``queue_latency``, ``delete_queued``) take them as separate
    arguments, as Faktory's Go client does; a list passed as one raises ``TypeError``
    saying so (``pause_queues(*names)`` passes a list).

    Args:
        url: ``tcp://[:password@]host:port`` or ``tcp+tls://...``; by default from
            ``WERK_URL``, ``FAKTORY_PROVIDER`` or ``FAKTORY_URL``.
        labels: labels sent in HELLO.
        wid: a worker id, only for connections that consume jobs and BEAT.
        pool_size: the most connections open at once.
        timeout: seconds to wait for a reply or a connection.
        connect_retries: how often to retry a failed new connection, waiting from 0.125 s
            up to at most 0.25, 0.5, 1, 2, 2 ... s (randomised) in between (the default 8:
            about 6 s in all, enough for a server restart); then
            :class:`~werk.client.ServerUnreachableError` is raised.

    Example::

        async with AsyncClient() as client:
            await client.push(Job("SendEmail", ["ann@example.com"]))
    """

    def __init__(
        self,
        url: str | ServerAddress | None = None,
        *,
        labels: Sequence[str] = (),
        wid: str | None = None,
        pool_size: int = 8,
        timeout: float = DEFAULT_TIMEOUT,
        connect_retries: int = 8,
    ) -> None:
        self.address = resolve(url)
        self.identity = Identity(wid=wid, labels=tuple(labels), username=self.address.username)
        self.timeout = timeout
        self.connect_retries = connect_retries
        self._idle: list[AsyncConnection] = []
        self._slots = asyncio.Semaphore(pool_size)

    # -- the pool ---------------------------------------------------------------------------

    async def _connect(self) -> AsyncConnection:
        delays = backoff_delays(*CONNECT_BACKOFF)
        started = time.monotonic()
        for attempt in range(self.connect_retries + 1):
            try:
                return await AsyncConnection.open(self.address, self.identity, self.timeout)
            except ssl.SSLError:
                raise  # a certificate or TLS setup problem: retrying cannot help
            except OSError as exc:
                if attempt == self.connect_retries:
                    seconds = time.monotonic() - started
                    url = self.address.url()
                    raise ServerUnreachableError(url, attempt + 1, seconds, exc) from exc
                await asyncio.sleep(next(delays))
        raise AssertionError("unreachable")

    async def _run(self, call: Call[T]) -> T:
        async with self._slots:
            while True:
                reused = bool(self._idle)
                conn = self._idle.pop() if reused else await self._connect()
                try:
                    result = await conn.call(call)
                except CONNECTION_ERRORS:
                    if reused:
                        continue  # a stale pooled connection: try again on a fresh one
                    raise
                finally:
                    if not conn.closed:
                        self._idle.append(conn)
                return result

    async def close(self) -> None:
        """Close every idle connection (END on each); the client stays usable."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        await asyncio.sleep(0)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def call(self, call: Call[T]) -> T:
        """Run a command built with :class:`~werk.client.proto.ClientProtocol` (or by hand).

        The way to send commands this client has no method for, on a pooled connection.
        """
        return await self._run(call)

    # -- producing --------------------------------------------------------------------------

    async def push(self, job: Job | Mapping[str, Any]) -> str:
        """Push one job and return its jid.

        Raises:
            CommandError: the server refused the job (``NotUniqueError`` for unique jobs).
        """
        payload = job_dict(job)
        await self._run(CALLS.push(payload))
        return str(payload["jid"])

    async def push_bulk(self, jobs: Iterable[Job | Mapping[str, Any]]) -> dict[str, str]:
        """Push many jobs in one PUSHB; return ``{jid: error}`` for those refused."""
        return await self._run(CALLS.push_bulk([job_dict(job) for job in jobs]))

    # -- results (a Werk extension) ----------------------------------------------------------

    async def job_state(self, jid: str, timeout: float | None = 0.0) -> JobState:
        """Return what the server knows of a job, waiting up to ``timeout`` seconds
        (``None``: no limit) for it to end (see :meth:`werk.client.Client.job_state`)."""
        deadline = Deadline(timeout)
        while True:
            try:
                doc = await self._run(CALLS.result(jid, deadline.next_wait()))
            except CONNECTION_ERRORS:
                pause = deadline.reconnect_pause()
                if pause is None:
                    raise
                await asyncio.sleep(pause)
                continue
            deadline.reached = True
            state = JobState.from_doc(doc)
            if state.finished or deadline.over():
                return state

    async def result(self, jid: str, timeout: float | None = None) -> Any:
        """Wait for a job and return its function's value (see
        :meth:`werk.client.Client.result` for the errors raised)."""
        return (await self.job_state(jid, timeout)).value()

    # -- consuming --------------------------------------------------------------------------

    async def fetch(self, *queues: str) -> dict[str, Any] | None:
        """Reserve the next job from the queues (in order), or ``None`` after ~2 s."""
        return await self._run(CALLS.fetch(queues or ("default",)))

    async def ack(self, jid: str, result: Any = None) -> None:
        """Report a job as done, with the ``result`` its function returned (see
        :meth:`werk.client.Client.ack`)."""
        await self._run(CALLS.ack(jid, result))

    async def fail(
        self,
        jid: str,
        errtype: str,
        message: str,
        backtrace: Sequence[str] = (),
        *,
        retry_in: int | None = None,
        dead: bool = False,
    ) -> None:
        """Report a job as failed; the server retries it or moves it to the dead set.

        Werk's extensions (a Faktory server ignores them): ``retry_in`` seconds until the
        retry instead of the backoff, if one is left; ``dead`` sends the job to the dead
        set at once."""
        call = CALLS.fail(jid, errtype, message, backtrace, retry_in=retry_in, dead=dead)
        await self._run(call)

    async def beat(self, current_state: str | None = None, rss_kb: int | None = None) -> str | None:
        """Send a heartbeat for this client's ``wid``; return ``"quiet"``/``"terminate"``.

        Raises:
            ValueError: the client has no ``wid``.
        """
        if not self.identity.wid:
            raise ValueError("beat needs a client created with a wid")
        return await self._run(CALLS.beat(self.identity.wid, current_state, rss_kb))

    # -- administration ---------------------------------------------------------------------

    async def processes(self) -> list[ProcessInfo]:
        """Return every worker process: see :meth:`werk.client.Client.processes`."""
        return await self._run(processes_call())

    async def info(self) -> dict[str, Any]:
        """Return the server's INFO document (queues, sets, counters, server)."""
        return await self._run(CALLS.info())

    async def flush(self) -> None:
        """Delete every job in the server. Meant for tests."""
        await self._run(CALLS.flush())

    async def mutate(self, cmd: str, target: str, filter: Mapping[str, Any] | None = None) -> None:
        """Run MUTATE: ``cmd`` clear/kill/discard/requeue on retries/scheduled/dead."""
        await self._run(CALLS.mutate(cmd, target, filter))

    async def delete_queued(self, queue: str, *jids: str) -> int:
        """Delete jobs that still wait in ``queue``, by jid; return how many were deleted.
        A running job is not stopped: see :meth:`werk.client.Client.delete_queued`."""
        return await self._run(CALLS.delete_queued(queue, jids))

    async def delete_unrun(self, queue: str, jid: str) -> bool:
        """Delete a job that has not run yet, from ``queue`` or the scheduled set; return
        whether it was deleted before it ran: see :meth:`werk.client.Client.delete_unrun`."""
        if (await self.job_state(jid)).state != "scheduled":
            return await self.delete_queued(queue, jid) == 1
        await self.discard_jobs("scheduled", [jid])
        if await self.delete_queued(queue, jid) == 1:  # it came due before the discard
            return True
        return (await self.job_state(jid)).gone_unrun

    async def pause_queues(self, *names: str) -> None:
        """Pause queues (``"*"`` for all): FETCH skips them until resumed."""
        await self._run(CALLS.queue("PAUSE", names))

    async def resume_queues(self, *names: str) -> None:
        """Resume paused queues (``"*"`` for all)."""
        await self._run(CALLS.queue("RESUME", names))

    async def remove_queues(self, *names: str) -> None:
        """Delete queues and all their jobs (``"*"`` for all)."""
        await self._run(CALLS.queue("REMOVE", names))

    async def queue_latency(self, *names: str) -> dict[str, float]:
        """Return the age in seconds of the oldest job in each queue."""
        return await self._run(CALLS.queue_latency(names))

    # -- the retry, scheduled and dead sets (Werk's JOBS) ---------------------------------

    async def jobs(
        self, target: Target, *, offset: int = 0, limit: int = PAGE_SIZE, **where: Unpack[Where]
    ) -> JobsPage:
        """Return one page of a set, a queue or the working set: see
        :meth:`werk.client.Client.jobs`."""
        return await self._run(jobs_call(target, offset=offset, limit=limit, **where))

    async def iter_jobs(
        self, target: Target, *, page_size: int = PAGE_SIZE, **where: Unpack[Where]
    ) -> AsyncIterator[SetEntry]:
        """Yield every matching entry, a page at a time: see
        :meth:`werk.client.Client.iter_jobs`."""
        offset: int | None = 0
        while offset is not None:
            page = await self.jobs(target, offset=offset, limit=page_size, **where)
            for entry in page.entries:
                yield entry
            offset = page.next_offset

    async def find_job(self, target: SetName, jid: str) -> SetEntry | None:
        """Return the entry of ``jid`` in the retry, scheduled or dead set, or ``None``."""
        entries = (await self.jobs(target, jids=[jid], limit=1)).entries
        return entries[0] if entries else None

    async def requeue_jobs(self, target: SetName, jobs: Iterable[SetEntry | str]) -> None:
        """Move the listed jobs of a set to their queues now (MUTATE ``requeue``)."""
        for call in mutate_calls("requeue", target, jobs):
            await self._run(call)

    async def discard_jobs(self, target: SetName, jobs: Iterable[SetEntry | str]) -> None:
        """Delete the listed jobs from a set (MUTATE ``discard``)."""
        for call in mutate_calls("discard", target, jobs):
            await self._run(call)

    async def kill_jobs(self, target: SetName, jobs: Iterable[SetEntry | str]) -> None:
        """Move the listed jobs of a set to the dead set (MUTATE ``kill``)."""
        for call in mutate_calls("kill", target, jobs):
            await self._run(call)

    # -- Enterprise commands ------------------------------------------------------------------

    async def batch_new(self, batch: Mapping[str, Any]) -> str:
        """Create a batch (``description``, ``success``/``complete`` jobs, each a
        :class:`Job` or a mapping); return its bid."""
        return await self._run(CALLS.batch_new(batch_dict(batch)))

    async def batch_open(self, bid: str) -> str:
        """Reopen a batch to add jobs; return its bid."""
        return await self._run(CALLS.batch_open(bid))

    async def batch_commit(self, bid: str) -> None:
        """Commit a batch: its callbacks may fire once its jobs are done."""
        await self._run(CALLS.batch_commit(bid))

    async def batch_status(self, bid: str) -> dict[str, Any]:
        """Return a batch's status document."""
        return await self._run(CALLS.batch_status(bid))

    async def track_set(self, jid: str, **fields: Any) -> None:
        """Update a tracked job's ``percent``, ``desc`` or ``reserve_until``."""
        await self._run(CALLS.track_set({"jid": jid, **fields}))

    async def track_get(self, jid: str) -> dict[str, Any]:
        """Return a tracked job's state document."""
        return await self._run(CALLS.track_get(jid))
