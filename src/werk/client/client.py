"""The blocking client: :class:`Client`, a thread-safe pool of :class:`Connection`.

Every method builds its command with the sans-IO core (:mod:`werk.client.proto`) and runs
it on a pooled connection. A connection that turns out dead when taken from the pool (the
server restarted meanwhile) is replaced once, transparently; new connections are retried
with exponential backoff and jitter.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, Unpack

from werk.client.backoff import backoff_delays
from werk.client.connection import (
    CONNECT_BACKOFF,
    CONNECTION_ERRORS,
    DEFAULT_TIMEOUT,
    Connection,
    ServerUnreachableError,
)
from werk.client.job import Job, batch_dict, job_dict
from werk.client.processes import ProcessInfo, processes_call
from werk.client.proto import Call, ClientProtocol, Identity
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

CALLS = ClientProtocol()
"""Builds :class:`Call` objects; a call does not depend on any connection's state."""


class Client:
    """A blocking client for Werk or any Faktory server; safe to share between threads.

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

        with Client("tcp://localhost:7419") as client:
            client.push(Job("SendEmail", ["ann@example.com"]))
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
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(pool_size)

    # -- the pool ---------------------------------------------------------------------------

    def _connect(self) -> Connection:
        delays = backoff_delays(*CONNECT_BACKOFF)
        started = time.monotonic()
        for attempt in range(self.connect_retries + 1):
            try:
                return Connection.open(self.address, self.identity, self.timeout)
            except ssl.SSLError:
                raise  # a certificate or TLS setup problem: retrying cannot help
            except OSError as exc:
                if attempt == self.connect_retries:
                    seconds = time.monotonic() - started
                    url = self.address.url()
                    raise ServerUnreachableError(url, attempt + 1, seconds, exc) from exc
                time.sleep(next(delays))
        raise AssertionError("unreachable")

    def _checkout(self) -> tuple[Connection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._connect(), False

    def _run(self, call: Call[T]) -> T:
        if not self._slots.acquire(timeout=self.timeout):
            raise TimeoutError("no free connection in the pool")
        try:
            while True:
                conn, reused = self._checkout()
                try:
                    result = conn.call(call)
                except CONNECTION_ERRORS:
                    if reused:
                        continue  # a stale pooled connection: try again on a fresh one
                    raise
                finally:
                    if not conn.closed:
                        with self._lock:
                            self._idle.append(conn)
                return result
        finally:
            self._slots.release()

    def close(self) -> None:
        """Close every idle connection (END on each); the client stays usable."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, call: Call[T]) -> T:
        """Run a command built with :class:`~werk.client.proto.ClientProtocol` (or by hand).

        The way to send commands this client has no method for, on a pooled connection.
        """
        return self._run(call)

    # -- producing --------------------------------------------------------------------------

    def push(self, job: Job | Mapping[str, Any]) -> str:
        """Push one job and return its jid.

        Raises:
            CommandError: the server refused the job (``NotUniqueError`` for unique jobs).
        """
        payload = job_dict(job)
        self._run(CALLS.push(payload))
        return str(payload["jid"])

    def push_bulk(self, jobs: Iterable[Job | Mapping[str, Any]]) -> dict[str, str]:
        """Push many jobs in one PUSHB; return ``{jid: error}`` for those refused."""
        return self._run(CALLS.push_bulk([job_dict(job) for job in jobs]))

    # -- results (a Werk extension) ----------------------------------------------------------

    def job_state(self, jid: str, timeout: float | None = 0.0) -> JobState:
        """Return what the server knows of a job, waiting up to ``timeout`` seconds
        (``None``: no limit) for it to end; the wait happens on the server.

        Jobs that asked for a result (``Job(result_ttl=...)``) are known through their
        whole life; others only while working, scheduled, retrying or dead.

        The wait outlasts a server restart: it keeps reconnecting until ``timeout`` is
        over (with ``None``, for as long as it takes once the server was reached), then
        raises :class:`~werk.client.ServerUnreachableError` if the server is still away.
        """
        deadline = Deadline(timeout)
        while True:
            try:
                doc = self._run(CALLS.result(jid, deadline.next_wait()))
            except CONNECTION_ERRORS:
                pause = deadline.reconnect_pause()
                if pause is None:
                    raise
                time.sleep(pause)
                continue
            deadline.reached = True
            state = JobState.from_doc(doc)
            if state.finished or deadline.over():
                return state

    def result(self, jid: str, timeout: float | None = None) -> Any:
        """Wait up to ``timeout`` seconds (``None``: no limit) for a job and return the
        value its function returned.

        Raises:
            JobFailedError: the job failed for good (discarded after a failure, or dead).
            UnknownJobError: the server knows nothing of the job (no ``result_ttl``, or
                its result expired).
            ResultTimeoutError: the job had not ended in time.
        """
        return self.job_state(jid, timeout).value()

    # -- consuming --------------------------------------------------------------------------

    def fetch(self, *queues: str) -> dict[str, Any] | None:
        """Reserve the next job from the queues (in order), or ``None`` after ~2 s."""
        return self._run(CALLS.fetch(queues or ("default",)))

    def ack(self, jid: str, result: Any = None) -> None:
        """Report a job as done, with the ``result`` its function returned (kept by a Werk
        server when the job asked for it; a JSON value, ``None`` sends none)."""
        self._run(CALLS.ack(jid, result))

    def fail(
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
        self._run(CALLS.fail(jid, errtype, message, backtrace, retry_in=retry_in, dead=dead))

    def beat(self, current_state: str | None = None, rss_kb: int | None = None) -> str | None:
        """Send a heartbeat for this client's ``wid``; return ``"quiet"``/``"terminate"``.

        Raises:
            ValueError: the client has no ``wid``.
        """
        if not self.identity.wid:
            raise ValueError("beat needs a client created with a wid")
        return self._run(CALLS.beat(self.identity.wid, current_state, rss_kb))

    # -- administration ---------------------------------------------------------------------

    def processes(self) -> list[ProcessInfo]:
        """Return every worker process the server knows (on every server sharing its
        store), the most recently started first, each with its ``busy`` job count and
        ``state`` (Sidekiq's ``ProcessSet``). Read only. Werk's ``PROCESSES`` extension
        (docs/protocol.md).

        Raises:
            CommandError: a Faktory server: ``unknown command PROCESSES``.
        """
        return self._run(processes_call())

    def info(self) -> dict[str, Any]:
        """Return the server's INFO document (queues, sets, counters, server)."""
        return self._run(CALLS.info())

    def flush(self) -> None:
        """Delete every job in the server. Meant for tests."""
        self._run(CALLS.flush())

    def mutate(self, cmd: str, target: str, filter: Mapping[str, Any] | None = None) -> None:
        """Run MUTATE: ``cmd`` clear/kill/discard/requeue on retries/scheduled/dead."""
        self._run(CALLS.mutate(cmd, target, filter))

    def delete_queued(self, queue: str, *jids: str) -> int:
        """Delete jobs that still wait in ``queue``, by jid (Celery's ``revoke``, Sidekiq's
        ``Queue#find_job(jid).delete``); return how many were deleted.

        A job not in that queue now is left alone and not counted: one a worker already
        fetched keeps running (it is not stopped, and its ACK or FAIL counts as usual), and
        a scheduled job or one waiting for a retry is in a set, not a queue (use
        :meth:`delete_unrun` for a scheduled job, :meth:`discard_jobs` for either).
        Werk's extension of MUTATE (docs/protocol.md); a Faktory server refuses it.

        Raises:
            CommandError: the server refused it (a Faktory server: ``invalid target``).
            ValueError: no jid given.
        """
        return self._run(CALLS.delete_queued(queue, jids))

    def delete_unrun(self, queue: str, jid: str) -> bool:
        """Delete a job that has not run yet, wherever it waits: in ``queue``, or in the
        scheduled set (pushed with ``at``: ``push_in``/``push_at``, Celery's ``countdown``
        and ``eta``); return whether it was deleted before it ran (Celery's ``revoke``).

        A job a worker fetched keeps running, and one waiting in the retry set has run:
        both are left alone (``False``). A scheduled job that comes due during the call is
        deleted from its queue, unless a worker fetched it first. Werk's extensions
        (``RESULT``, MUTATE's ``queue`` target; docs/protocol.md): a Faktory server refuses
        them.

        Raises:
            CommandError: the server refused a command (a Faktory server).
        """
        if self.job_state(jid).state != "scheduled":
            return self.delete_queued(queue, jid) == 1
        self.discard_jobs("scheduled", [jid])
        if self.delete_queued(queue, jid) == 1:  # it came due before the discard
            return True
        return self.job_state(jid).gone_unrun

    def pause_queues(self, *names: str) -> None:
        """Pause queues (``"*"`` for all): FETCH skips them until resumed."""
        self._run(CALLS.queue("PAUSE", names))

    def resume_queues(self, *names: str) -> None:
        """Resume paused queues (``"*"`` for all)."""
        self._run(CALLS.queue("RESUME", names))

    def remove_queues(self, *names: str) -> None:
        """Delete queues and all their jobs (``"*"`` for all)."""
        self._run(CALLS.queue("REMOVE", names))

    def queue_latency(self, *names: str) -> dict[str, float]:
        """Return the age in seconds of the oldest job in each queue."""
        return self._run(CALLS.queue_latency(names))

    # -- the retry, scheduled and dead sets (Werk's JOBS) ---------------------------------

    def jobs(
        self, target: Target, *, offset: int = 0, limit: int = PAGE_SIZE, **where: Unpack[Where]
    ) -> JobsPage:
        """Return one page of the retry set (``"retries"``), the scheduled set, the dead
        set, (``"queue"`` with ``queue=``) a queue, or (``"working"``) the jobs workers are
        running now, in the web UI's order.

        ``jids``, ``regexp`` (a glob over the job's JSON) and ``jobtype`` are MUTATE's
        filter and must all hold; none lists every entry. For ``"working"`` (Celery's
        ``inspect().active()``, Sidekiq's ``WorkSet``), ``queue=`` keeps the jobs fetched
        from that queue, and each entry has ``reserved_at``, ``expires_at`` and ``wid``
        (Faktory's reservation fields). ``limit`` is 1..1000. Werk's ``JOBS`` extension
        (docs/protocol.md).

        Raises:
            CommandError: the server refused it (a bad argument; a Faktory server:
                ``unknown command JOBS``).
        """
        return self._run(jobs_call(target, offset=offset, limit=limit, **where))

    def iter_jobs(
        self, target: Target, *, page_size: int = PAGE_SIZE, **where: Unpack[Where]
    ) -> Iterator[SetEntry]:
        """Yield every entry of a set (or a queue) that matches, a page at a time (see
        :meth:`jobs`). Pages are read by offset: collect what you mean to act on
        (``list(...)``) before you requeue, discard or kill it, since those shift the
        entries after it."""
        offset: int | None = 0
        while offset is not None:
            page = self.jobs(target, offset=offset, limit=page_size, **where)
            yield from page.entries
            offset = page.next_offset

    def find_job(self, target: SetName, jid: str) -> SetEntry | None:
        """Return the entry of ``jid`` in the retry, scheduled or dead set, or ``None``
        (Sidekiq's ``find_job``)."""
        entries = self.jobs(target, jids=[jid], limit=1).entries
        return entries[0] if entries else None

    def requeue_jobs(self, target: SetName, jobs: Iterable[SetEntry | str]) -> None:
        """Move the listed jobs (entries or jids) of a set to their queues now (MUTATE
        ``requeue``; Sidekiq's ``retry`` and ``add_to_queue``). A jid no longer in the
        set is skipped."""
        for call in mutate_calls("requeue", target, jobs):
            self._run(call)

    def discard_jobs(self, target: SetName, jobs: Iterable[SetEntry | str]) -> None:
        """Delete the listed jobs (entries or jids) from a set (MUTATE ``discard``;
        Sidekiq's ``delete``)."""
        for call in mutate_calls("discard", target, jobs):
            self._run(call)

    def kill_jobs(self, target: SetName, jobs: Iterable[SetEntry | str]) -> None:
        """Move the listed jobs (entries or jids) of a set to the dead set (MUTATE
        ``kill``; Sidekiq's ``kill``)."""
        for call in mutate_calls("kill", target, jobs):
            self._run(call)

    # -- Enterprise commands ------------------------------------------------------------------

    def batch_new(self, batch: Mapping[str, Any]) -> str:
        """Create a batch (``description``, ``success``/``complete`` jobs, each a
        :class:`Job` or a mapping); return its bid."""
        return self._run(CALLS.batch_new(batch_dict(batch)))

    def batch_open(self, bid: str) -> str:
        """Reopen a batch to add jobs; return its bid."""
        return self._run(CALLS.batch_open(bid))

    def batch_commit(self, bid: str) -> None:
        """Commit a batch: its callbacks may fire once its jobs are done."""
        self._run(CALLS.batch_commit(bid))

    def batch_status(self, bid: str) -> dict[str, Any]:
        """Return a batch's status document."""
        return self._run(CALLS.batch_status(bid))

    def track_set(self, jid: str, **fields: Any) -> None:
        """Update a tracked job's ``percent``, ``desc`` or ``reserve_until``."""
        self._run(CALLS.track_set({"jid": jid, **fields}))

    def track_get(self, jid: str) -> dict[str, Any]:
        """Return a tracked job's state document."""
        return self._run(CALLS.track_get(jid))
