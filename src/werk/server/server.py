"""The server's lifecycle: start (store, manager, listener, tasks, subsystems), serve, stop.

``start`` returns once the command port listens (``port`` then holds the bound port, so
port 0 works); ``stop`` stops accepting, lets in-flight commands answer, stops the periodic
tasks, closes the store so every accepted write is on disk, and returns. The web UI is a
:class:`Subsystem` that whoever builds the server registers (``werk server`` does, in
:mod:`werk.cli.server`), as in Faktory; this module never imports it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import resource
import socket
import ssl
import time
from collections.abc import Awaitable
from typing import Any, Protocol

from werk import __version__
from werk.errors import StorageError
from werk.job import format_time
from werk.manager import Manager
from werk.manager.expiry import expired_count
from werk.manager.features import default_middleware
from werk.manager.processes import Processes
from werk.server.authlog import AuthFailureLog
from werk.server.config import BACKEND_DURABILITY, ServerConfig
from werk.server.connection import READ_SIZE, Connection
from werk.server.cron import attach, check_settings
from werk.server.outbox import Outbox
from werk.server.settings import reloaded
from werk.server.startup import bind_error, jobs_line, startup_lines, startup_warnings
from werk.server.state import ConnectionState, ReloadHook
from werk.server.tasks import Tasks
from werk.server.timings import CommandTimings
from werk.server.tls import reload_context, server_context
from werk.storage import open_store
from werk.storage.base import Store

log = logging.getLogger("werk.server")

DESCRIPTION = "Werk (Faktory Enterprise compatible)"
FAKTORY_VERSION = "1.10.0"
AUTH_FAILURE_DELAY = 0.5
STOP_STORE_BOUND = 5.0
"""Seconds a stop waits for each piece of its store work (this server's process links,
outcomes still being written, connections closing) before it goes on without: a store in
an outage does not hold the stop for its retries (docs/operations.md)."""
LISTEN_BACKLOG = 4096


class Subsystem(Protocol):
    """A part that runs with the server, such as the web UI (Faktory's ``Subsystem``)."""

    async def start(self) -> None:
        """Start serving; called once the command port listens, in registration order."""

    async def stop(self) -> None:
        """Stop; called right after the command port closes, in reverse order. Must also
        work when :meth:`start` was never called or failed."""


class Server:
    """A running Werk server. Create, ``await start()``, and later ``await stop()``."""

    def __init__(self, config: ServerConfig, store: Store | None = None) -> None:
        check_settings(config.settings)  # a bad [[cron]] or [throttles] stops the start
        self.config = config
        self.store = store or open_store(config.store_url, config.durability)
        self.durability: str = getattr(self.store, "durability", BACKEND_DURABILITY)
        """What ``+OK`` to a PUSH means: ``fsync`` or ``os`` on the embedded store (see
        ``--durability``), :data:`BACKEND_DURABILITY` on Redis or PostgreSQL."""
        self.manager = Manager(
            self.store, middleware=default_middleware(self.store, config.settings)
        )
        self.processes = Processes(
            self.store, config.name or socket.gethostname(), open_connections=self.open_connections
        )
        self.tasks = Tasks(self)
        self.connections: set[ConnectionState] = set()
        self.process_states: dict[str, str] = {}
        """Each worker process's state as its last BEAT on this server saw it."""
        self.command_count = 0
        self.timings = CommandTimings()
        self.outbox = Outbox()
        """Command replies, written together once per pass of the event loop."""
        self.reload_hooks: list[ReloadHook] = []
        """Called with the new configuration after SIGHUP (cron, throttles, ...)."""
        self.tls: ssl.SSLContext | None = None
        self.services: list[Any] = []
        self.started_at = time.time()
        self.stopping = False
        self.port = 0
        self.web_port = 0
        """The web UI's bound port, set by the web UI subsystem when it starts (0: none)."""
        self._listener: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        """Each connection's task and its peer address (``host:port``)."""
        self._auth_failures = AuthFailureLog()
        self.subsystems: list[Subsystem] = []
        self._stopped = asyncio.Event()
        self._store_open = False
        self.cron = attach(self)
        """The cron scheduler; ``await server.cron.status()`` feeds the web UI."""

    def register(self, subsystem: Subsystem) -> None:
        """Run ``subsystem`` with the server: started by :meth:`start`, stopped by :meth:`stop`."""
        self.subsystems.append(subsystem)

    @property
    def connection_count(self) -> int:
        """The number of identified connections."""
        return len(self.connections)

    def connected_wids(self) -> set[str]:
        """The worker processes with a connection open on this server."""
        return {conn.wid for conn in self.connections if conn.wid}

    def open_connections(self, wid: str) -> int:
        """The number of this server's identified connections of worker process ``wid``."""
        return sum(1 for conn in self.connections if conn.wid == wid)

    async def start(self) -> None:
        """Open the store, start the periodic tasks, listen, and start the subsystems."""
        self.tls = server_context(self.config)
        await self.store.open()
        self._store_open = True
        self.tasks.start()
        self.cron.start()
        host, port = self.config.binding
        try:
            self._listener = await asyncio.start_server(
                self._accept,
                host,
                port,
                # The read-ahead, not the longest line (the connection's LineReader holds that).
                limit=READ_SIZE,
                reuse_address=True,
                # asyncio's default backlog (100) overflows under a burst of connects, and
                # each dropped SYN costs that client a 1 s retransmit.
                backlog=LISTEN_BACKLOG,
                ssl=self.tls,
                ssl_handshake_timeout=self.config.handshake_timeout if self.tls else None,
            )
        except OSError as exc:
            raise bind_error("the work protocol", "-b", host, port, exc) from exc
        self.port = self._listener.sockets[0].getsockname()[1]
        await self.processes.start(self.port, exclusive=getattr(self.store, "exclusive", False))
        for subsystem in self.subsystems:
            await subsystem.start()
        self._start_services()
        for line in startup_lines(self, await jobs_line(self.store)):
            log.info("%s", line)
        for line in self.cron.loaded(configured_only=True):
            log.info("%s", line)
        for line in startup_warnings(self.config):
            log.warning("%s", line)

    def _start_services(self) -> None:
        from werk.server.backups import PeriodicBackups
        from werk.server.statsd import StatsdReporter

        self.services = [PeriodicBackups(self), StatsdReporter(self)]
        for service in self.services:
            service.start()

    async def reload(self, config: ServerConfig) -> None:
        """Apply a reloaded configuration (SIGHUP): passwords, limits, log settings, TLS
        certificate, periodic backups, statsd; then call every :attr:`reload_hooks`.

        Binding, web binding, data directory, storage and environment need a restart.
        """
        config, changed = reloaded(self.config, config)
        for name in changed:
            log.warning("%s changed: it takes effect after a restart", name)
        self.config = config
        if self.tls is not None:
            reload_context(self.tls, config)
        for hook in list(self.reload_hooks):
            try:
                result = hook(config)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("reload hook %r failed", hook)
        log.info("configuration reloaded")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await Connection(self, reader, writer).serve()
        except asyncio.CancelledError:
            # The stop gave up on it (its store work outlasted STOP_STORE_BOUND); raised
            # from here, asyncio would log the cancellation as an error.
            if not self.stopping:
                raise
        finally:
            self._handlers.discard(task)

    def admit(self, conn: ConnectionState) -> bool:
        """Count an identified connection in, unless the limit is reached."""
        if len(self.connections) >= self.config.max_connections:
            return False
        self.connections.add(conn)
        return True

    def release(self, conn: ConnectionState) -> None:
        """Count a closing connection out."""
        self.connections.discard(conn)

    async def auth_failed(self, peer: str) -> None:
        """Log a wrong password with the client's address (``host:port``; rate-limited:
        :mod:`.authlog`), and slow the client down, to make guessing expensive."""
        self._auth_failures.failed(peer)
        await asyncio.sleep(AUTH_FAILURE_DELAY)

    async def idle_fetch(self) -> None:
        """What a FETCH from a quiet or terminating process does: wait, then answer nil."""
        await asyncio.sleep(2.0)

    def close_process(self, wid: str) -> int:
        """Close every connection of a worker process; return how many were closed."""
        self.process_states.pop(wid, None)
        closing = [conn for conn in self.connections if conn.wid == wid]
        for conn in closing:
            conn.abort()
        return len(closing)

    async def info(self) -> dict[str, Any]:
        """Return the INFO document (also served at the web UI's ``/stats``)."""
        store = self.store
        queues = await store.queue_sizes()
        counters = await store.counters()
        sets = {name: await store.set_size(name) for name in ("scheduled", "retries", "dead")}
        working = await store.working_size()
        now = time.time()
        tasks = self.tasks.stats
        return {
            "now": format_time(now),
            "server_utc_time": time.strftime("%H:%M:%S UTC", time.gmtime(now)),
            "faktory": {
                "queues": queues,
                "sets": {**sets, "working": working},
                "tasks": {
                    "Busy": {"size": working, "reaped": tasks.reservations_reaped},
                    "Workers": {
                        "size": len(await self.processes.list()),
                        "reaped": tasks.processes_reaped,
                    },
                    "Scheduled": tasks.set_stats("scheduled", sets["scheduled"]),
                    "Retries": tasks.set_stats("retries", sets["retries"]),
                    "Dead": tasks.set_stats("dead", sets["dead"]),
                    "Expired": {"size": await expired_count(store)},
                },
                "results": await self._result_counts(),
                "total_failures": counters.failures,
                "total_processed": counters.processed,
                "total_enqueued": sum(queues.values()),
                "total_queues": len(queues),
            },
            "server": {
                "description": DESCRIPTION,
                "faktory_version": FAKTORY_VERSION,
                "werk_version": __version__,
                "uptime": int(now - self.started_at),
                "connections": self.connection_count,
                "command_count": self.command_count,
                "used_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                "pid": os.getpid(),
                "durability": self.durability,
            },
        }

    async def _result_counts(self) -> dict[str, int]:
        # Werk's extension: outcomes stored since the last FLUSH (docs/protocol.md).
        results = self.manager.results
        return await results.counts() if results is not None else {"succeeded": 0, "failed": 0}

    async def stop(self) -> None:
        """Stop gracefully: refuse new work, finish in-flight commands, close the store."""
        if self.stopping:
            await self._stopped.wait()
            return
        self.stopping = True
        if not self._store_open:
            # A start that failed opening the store: nothing ran, nothing to undo in it;
            # close() releases what the open left (a lock, a connection).
            await self.store.close()
            self._stopped.set()
            return
        log.info("shutting down")
        if self._listener is not None:
            self._listener.close()
        for subsystem in reversed(self.subsystems):
            await subsystem.stop()
        # Idle connections are closed now; busy ones finish their command first.
        for conn in list(self.connections):
            if not conn.busy:
                conn.abort()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=5.0)
        for conn in list(self.connections):
            conn.abort()
        await self._end_handlers()
        for service in self.services:
            await service.stop()
        await self.cron.stop()
        await self.tasks.stop()
        # After the tasks: their heartbeat must not write the liveness record again.
        await self._bounded("remove this server's process links", self.processes.stop())
        if self.manager.results is not None:
            await self._bounded("write the outcomes still pending", self.manager.results.flush())
        await self.store.close()
        self._stopped.set()
        log.info("stopped")

    async def _end_handlers(self) -> None:
        """Let the aborted connections' tasks finish; cancel those that wait on the store
        past :data:`STOP_STORE_BOUND`, so none runs after \"stopped\"."""
        if not self._handlers:
            return
        _, pending = await asyncio.wait(list(self._handlers), timeout=STOP_STORE_BOUND)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def _bounded(self, what: str, work: Awaitable[None]) -> None:
        """Await one piece of the stop's store work for :data:`STOP_STORE_BOUND` seconds at
        most; a failure or the timeout is one warning line, and the stop goes on."""
        try:
            async with asyncio.timeout(STOP_STORE_BOUND):
                await work
        except TimeoutError:
            log.warning("could not %s: the store did not answer within %gs", what, STOP_STORE_BOUND)
        except StorageError as exc:
            log.warning("could not %s: %s", what, exc)
        except Exception:
            log.exception("could not %s", what)

    async def wait_stopped(self) -> None:
        """Wait until :meth:`stop` has finished."""
        await self._stopped.wait()
