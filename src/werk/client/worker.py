"""The worker: register job functions, then fetch and run jobs until told to stop.

Lifecycle, in three phases:

1. *startup*: middleware ``on_start``, one :class:`~werk.client.processor.Processor` per
   concurrency slot (each with its own connection) and the heartbeat task;
2. *running*: processors fetch and run jobs; ``quiet`` (from the server's BEAT reply, or
   :meth:`Worker.quiet`, or SIGTSTP) stops fetching; ``terminate`` (BEAT), SIGTERM, SIGINT or
   :meth:`Worker.stop` begin the shutdown, and so does reaching ``max_jobs`` or
   ``max_memory`` (:mod:`werk.client.recycling`);
3. *shutdown*: no new FETCH; running jobs get ``shutdown_timeout`` seconds to finish and be
   ACKed (a second SIGINT/SIGTERM or :meth:`Worker.stop` ``(force=True)`` ends the wait at
   once); jobs still running then are FAILed back with errtype ``WorkerShutdown`` so a Werk
   server runs them again at once, using no retry; then middleware ``on_stop``. Nothing is lost.

The worker logs on the ``werk.worker`` logger and never configures logging itself:
``werk worker`` does, and a program using :class:`Worker` keeps its own configuration.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from werk.client.client import CALLS
from werk.client.connection import DEFAULT_TIMEOUT
from werk.client.middleware import Middleware
from werk.client.processor import Processor, heartbeat
from werk.client.proto import Call, Identity, new_wid
from werk.client.queues import QueueOrder, declared_queues
from werk.client.reconnect import Connector
from werk.client.recycling import Recycling, resident_kib
from werk.client.registration import Registrar, known_jobtypes
from werk.client.reservations import ReservationKeeper
from werk.client.runner import Runner
from werk.client.shutdown import handle_signals, supervise
from werk.client.stalls import LoopWatch
from werk.client.state import QUIET, RUNNING, STOPPING, wait_event
from werk.client.threads import JobThreads
from werk.client.url import ServerAddress, resolve

log = logging.getLogger("werk.worker")


class Worker(Registrar):
    """Fetches jobs from Werk (or any Faktory server) and runs the registered functions.

    Args:
        url: the server URL; by default from ``WERK_URL``/``FAKTORY_URL``.
        queues: queue names in strict order, or ``"name,weight"``/``(name, weight)`` for
            weighted order. ``None`` (the default): ``default`` plus the queues of the tasks
            given to :meth:`include`, see :func:`~werk.client.queues.declared_queues`.
        concurrency: how many jobs run at once (one connection each).
        labels: shown on the server's Busy page.
        shutdown_timeout: seconds running jobs get to finish when the worker stops.
        middleware: hooks around the worker and each job.
        heartbeat_interval: seconds between BEATs (the protocol wants 5..60, 15 advised).
        timeout: seconds to wait for a server reply.
        max_jobs: stop gracefully after this many jobs ran (whatever their outcome), to be
            replaced by a fresh process (Celery's ``worker_max_tasks_per_child``); ``None``:
            no limit. With ``concurrency`` above 1 no FETCH goes out past it.
        max_memory: stop gracefully once the process's resident memory, checked after each
            job, is above this many MiB (Celery's ``worker_max_memory_per_child``);
            ``None``: no limit. After either, :attr:`recycled` says why.

    Raises:
        ValueError: ``concurrency``, ``max_jobs`` or ``max_memory`` below 1.

    Example::

        worker = Worker(queues=["critical", "default"], concurrency=20)

        @worker.register("SendEmail")
        def send_email(address: str) -> None: ...

        worker.run()
    """

    def __init__(
        self,
        url: str | ServerAddress | None = None,
        *,
        queues: Iterable[str | tuple[str, int]] | None = None,
        concurrency: int = 10,
        labels: Sequence[str] = ("python",),
        shutdown_timeout: float = 25.0,
        middleware: Sequence[Middleware] = (),
        heartbeat_interval: float = 15.0,
        timeout: float = DEFAULT_TIMEOUT,
        max_jobs: int | None = None,
        max_memory: int | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        Recycling(max_jobs, max_memory)  # refuses limits below 1
        self.max_jobs = max_jobs
        self.max_memory = max_memory
        self.recycled: str | None = None
        """Why the worker stopped to be replaced (``"processed 1000 jobs (--max-jobs
        1000)"``), once ``max_jobs`` or ``max_memory`` was reached; else ``None``."""
        super().__init__()
        self._url = url
        self._queues = None if queues is None else QueueOrder(queues)
        self._auto = declared_queues(self._declared)
        self.concurrency = concurrency
        self.labels = tuple(labels)
        self.shutdown_timeout = shutdown_timeout
        self.middleware = list(middleware)
        self.heartbeat_interval = heartbeat_interval
        self.timeout = timeout
        self.wid = new_wid()
        self.state = RUNNING
        self.abandoned = 0
        """Jobs handed back at the shutdown deadline while their function still ran."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed = asyncio.Event()
        self.give_up = asyncio.Event()
        self._forced = asyncio.Event()
        self._strict_fetch: Call[Any] | None = None
        self.keeper: ReservationKeeper | None = None
        """Renews running jobs' reservations (set while the worker runs)."""

    # -- queues --------------------------------------------------------------------------

    def _queues_declared(self) -> None:
        self._auto = declared_queues(self._declared)
        self._strict_fetch = None

    @property
    def queues(self) -> QueueOrder:
        """The queues to fetch: those given, else ``default`` plus the included tasks'."""
        return self._queues or self._auto

    @queues.setter
    def queues(self, order: QueueOrder) -> None:
        self._queues = order
        self._strict_fetch = None

    # -- state, readable by processors and the heartbeat ---------------------------------

    @property
    def address(self) -> ServerAddress:
        """The server this worker connects to."""
        return resolve(self._url)

    @property
    def identity(self) -> Identity:
        """What this worker's connections say in HELLO."""
        return Identity(wid=self.wid, labels=self.labels, username=self.address.username)

    @property
    def fetching(self) -> bool:
        """Whether processors should FETCH (neither quiet nor stopping)."""
        return self.state == RUNNING

    @property
    def stopping(self) -> bool:
        """Whether the shutdown has begun."""
        return self.state == STOPPING

    @property
    def announced_state(self) -> str | None:
        """The ``current_state`` the next BEAT announces (``None`` while running)."""
        return None if self.state == RUNNING else self.state

    def fetch_call(self) -> Call[Any]:
        """The FETCH for the next job, in strict or freshly weighted queue order."""
        if self._strict_fetch is not None:  # reset whenever the queues change
            return self._strict_fetch
        queues = self.queues
        if queues.weighted:
            return CALLS.fetch(queues.order())
        self._strict_fetch = CALLS.fetch(queues.names)
        return self._strict_fetch

    @staticmethod
    def rss_kb() -> int | None:
        """This process's resident memory in KiB (reported in BEAT), if known."""
        return resident_kib()

    async def wait_state_change(self, timeout: float | None = None) -> None:
        """Wait until quiet/stop is requested, or ``timeout`` seconds pass."""
        await wait_event(self._changed, timeout)

    def _set_state(self, state: str) -> None:
        order = (RUNNING, QUIET, STOPPING)
        if order.index(state) <= order.index(self.state):
            return  # states only move forward, as in the protocol
        log.info("worker %s: %s", self.wid, "quiet" if state == QUIET else "stopping")
        self.state = state
        self._changed.set()
        self._changed = asyncio.Event()

    def obey(self, state: str | None) -> None:
        """Apply a state the server asked for in a BEAT reply."""
        if state == QUIET:
            self._set_state(QUIET)
        elif state == STOPPING:
            self._set_state(STOPPING)

    # -- control, from any thread ---------------------------------------------------------

    def _in_loop(self, func: Callable[[], None]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            func()
        elif _running_loop() is loop:
            func()
        else:
            loop.call_soon_threadsafe(func)

    def _recycle(self, reason: str) -> None:
        """Stop gracefully to be replaced (a limit was reached, in the loop's thread). A
        quiet worker runs no more jobs, so it stays as it is until stopped."""
        if self.state != RUNNING:
            return
        self.recycled = reason
        log.info("worker %s: %s: exiting to be replaced", self.wid, reason)
        self._set_state(STOPPING)

    def quiet(self) -> None:
        """Stop fetching new jobs; running ones finish. Safe to call from any thread."""
        self._in_loop(lambda: self._set_state(QUIET))

    def stop(self, *, force: bool = False) -> None:
        """Begin the graceful shutdown. Safe to call from any thread or signal handler.

        With ``force`` (or when already stopping and called again from a signal), running
        jobs are not waited for: they are FAILed back with errtype ``WorkerShutdown`` at
        once, so a Werk server runs them again at once.
        """

        def apply() -> None:
            self._set_state(STOPPING)
            if force:
                self._forced.set()

        self._in_loop(apply)

    # -- running -----------------------------------------------------------------------

    def run(self, *, install_signals: bool = True) -> None:
        """Run until stopped (blocking): SIGTERM/SIGINT stop, SIGTSTP quiets.

        Signal handlers are only installed in the main thread.

        Uses uvloop when it is installed.
        """
        loop_factory = _loop_factory()
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(self.run_async(install_signals=install_signals))

    async def run_async(self, *, install_signals: bool = False) -> None:
        """Run on the current event loop until stopped.

        Raises:
            AuthenticationError: the server refused the password.
        """
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self.give_up = asyncio.Event()
        self._forced = asyncio.Event()
        self.recycled = None
        recycling = Recycling(self.max_jobs, self.max_memory, self._recycle)
        if install_signals and threading.current_thread() is threading.main_thread():
            handle_signals(self.stop, self.quiet)
        self._log_start()
        resident = resident_kib()
        if self.max_memory is not None and resident is not None:
            if resident >= self.max_memory * 1024:
                log.warning(
                    "resident memory is %.1f MiB at start, over --max-memory %d: the worker"
                    " will be replaced after every job",
                    resident / 1024,
                    self.max_memory,
                )
        threads = JobThreads(self.concurrency)
        runner = Runner(self.registry, self.middleware, threads)
        connector = Connector(self)
        for middleware in self.middleware:
            middleware.on_start(self)
        processors = [
            Processor(self, runner, connector, i, recycling) for i in range(self.concurrency)
        ]
        self.keeper = keeper = ReservationKeeper(
            connector, lambda: [p.job for p in processors if p.job is not None]
        )
        tasks = [
            asyncio.create_task(p.run(), name=f"werk-processor-{i}")
            for i, p in enumerate(processors)
        ]
        running = dict(zip(tasks, processors, strict=True))
        watch = LoopWatch(lambda task: running[task].job if task in running else None)
        helpers = [
            asyncio.create_task(heartbeat(self, connector), name="werk-heartbeat"),
            asyncio.create_task(keeper.run(), name="werk-reservations"),
            asyncio.create_task(watch.run(), name="werk-loop-watch"),
        ]
        try:
            await supervise(self, processors, tasks, self._forced)
        finally:
            for task in [*helpers, *tasks]:
                task.cancel()
            await asyncio.gather(*helpers, *tasks, return_exceptions=True)
            threads.shutdown()
            for middleware in reversed(self.middleware):
                middleware.on_stop(self)
            self._loop = None
            log.info("worker %s stopped", self.wid)

    def _log_start(self) -> None:
        order = self.queues
        if order.weighted:
            pairs = zip(order.names, order.weights, strict=True)
            queues = ", ".join(f"{name} (weight {weight})" for name, weight in pairs)
        else:
            queues = ", ".join(order.names)
            if len(order.names) > 1:
                queues += " (in this order)"
        log.info(
            "worker %s starting: server %s, queues %s, concurrency %d, labels %s, jobtypes %s",
            self.wid,
            self.address.url(),
            queues,
            self.concurrency,
            ",".join(self.labels),
            known_jobtypes(self.registry),
        )
        if self.max_memory is not None and resident_kib() is None:
            log.warning("max_memory is not checked: this system does not tell the memory used")
        left_out = [name for name in self._declared if name not in order.names]
        if self._queues is not None and left_out:
            log.warning(
                "queues %s of included tasks are not among this worker's queues: their jobs"
                " wait for a worker that fetches them",
                ", ".join(left_out),
            )


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    if sys.platform == "win32":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
