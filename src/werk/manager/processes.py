"""Worker processes: registration at HELLO, heartbeats, quiet and terminate, expiry.

A process is known by its ``wid``; several connections may share one. Its state moves only
forward: running (``""``) -> ``quiet`` -> ``terminate``. A process silent for more than
60 seconds is forgotten and its connections are closed. The records live in the store, so
every server sharing a backend shows every process.

Connection counts (Werk's own; Faktory keeps processes in memory only): each server is the
authority on its own connections, so it never adds to or subtracts from a stored count
(concurrent HELLOs of one worker's connections would lose updates). Instead it writes
``links[<its key>] = [the connections of that wid open on it now, now]`` whenever it
writes the record, and refreshes the links of the processes connected to it every
heartbeat period (:meth:`Processes.refresh`). ``connections`` is the sum of the links
written less than 60 s ago by a server that is still running: on a shared store each
server keeps a liveness record (:mod:`werk.manager.servers`) and deletes it, and its links,
when it stops, so a stopped server stops counting at once and a crashed one within 20 s
(at once when it ran on the same machine), even when it comes back on another port.

Records are not state to keep across a restart (Faktory keeps heartbeats in memory,
Sidekiq expires them after 60 s): when a server starts (:meth:`Processes.start`) it drops
its own links (its connections died with it), the links older than 60 s, and the records
left with no link or silent for over 60 s -- so a restored backup brings back no process.
The links of a server that is gone stay in the records until then (a server that merely
stalled past its liveness record's expiry must not lose its processes' records), but
:meth:`Processes.list` neither counts them nor shows a process counted only by them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Container
from typing import Any

from werk.job import format_time
from werk.manager.servers import ServerRecords
from werk.protocol.fields import is_int64
from werk.storage.base import Process, Store

HEARTBEAT_TTL = 60.0
LINK_FRESH = 10.0
"""A HELLO or a close that finds this server's link already counting what is open now, and
written less than this many seconds ago, writes nothing (a worker's connections say HELLO
all at once: the first write counts most of them)."""
LOCK_STRIPES = 64
STATES = ("", "quiet", "terminate")
BUSY_SCAN = 1000
"""At most this many reservations are read to count each process's busy jobs."""


def advance(current: str, wanted: str) -> str:
    """Return the state after asking to move from ``current`` to ``wanted`` (never back)."""
    if wanted not in STATES:
        return current
    return wanted if STATES.index(wanted) > STATES.index(current) else current


def live_connections(process: Process, now: float, servers: Container[str] | None = None) -> int:
    """Return the connections of ``process`` counted by links written in the last 60 s
    (and, when ``servers`` is given, by one of those servers: the running ones)."""
    cutoff = now - HEARTBEAT_TTL
    return sum(
        int(count)
        for key, (count, stamp) in process.links.items()
        if stamp >= cutoff and (servers is None or key in servers)
    )


async def busy_counts(store: Store) -> tuple[dict[str, int], bool]:
    """Return how many reservations each wid holds, counted over the first
    :data:`BUSY_SCAN` reservations (soonest expiry first), and whether more exist than
    were counted (then a count may be short)."""
    counts: dict[str, int] = {}
    held = await store.working(0, BUSY_SCAN)
    for reservation in held:
        counts[reservation.wid] = counts.get(reservation.wid, 0) + 1
    return counts, len(held) >= BUSY_SCAN


def process_doc(process: Process, busy: int, capped: bool) -> dict[str, Any]:
    """Return the PROCESSES reply entry of a process: what its HELLO and BEATs said, its
    ``state`` (``""`` running, ``quiet``, ``terminate``), ``busy`` (the jobs it holds) and
    the times as RFC 3339."""
    return {
        "wid": process.wid,
        "hostname": process.hostname,
        "pid": process.pid,
        "labels": process.labels,
        "state": process.state,
        "busy": busy,
        "busy_capped": capped,
        "started_at": format_time(process.started_at),
        "last_beat": format_time(process.last_beat),
        "rss_kb": process.rss_kb,
        "connections": process.connections,
    }


class Processes:
    """The registry of worker processes, over the store's process records.

    ``open_connections(wid)`` returns how many connections of ``wid`` are open on this
    server now (the server's own count; 0 where there is none, as in tests that call
    :meth:`hello` without a connection).
    """

    def __init__(
        self,
        store: Store,
        server: str,
        clock: Callable[[], float] = time.time,
        open_connections: Callable[[str], int] = lambda wid: 0,
    ) -> None:
        self._store = store
        self._server = server
        self._clock = clock
        self._open = open_connections
        self.key = server
        """This server's key in ``Process.links``: ``<name>:<port>`` once started."""
        self._locks = [asyncio.Lock() for _ in range(LOCK_STRIPES)]
        """Serialize this server's read-modify-writes of one record (striped by wid)."""
        self.servers = ServerRecords(store, clock)
        """The liveness records of the servers sharing the store."""
        self.exclusive = False
        """No other server uses the store (the embedded one): no liveness records."""

    async def _live(self) -> set[str] | None:
        """The running servers' keys (``None``: every link is this server's)."""
        return None if self.exclusive else await self.servers.live()

    def _lock(self, wid: str) -> asyncio.Lock:
        return self._locks[hash(wid) % LOCK_STRIPES]

    async def start(self, port: int, *, exclusive: bool = False) -> int:
        """Forget what a previous run of this server left; return how many records went.

        Called once the server listens on ``port``, before any HELLO. ``exclusive``: no
        other server uses the store (the embedded one), so every stored record is stale.
        """
        self.key = f"{self._server}:{port}"
        self.exclusive = exclusive
        if not exclusive:
            await self.servers.announce(self.key)
        now = self._clock()
        gone = 0
        for process in await self._store.processes():
            async with self._lock(process.wid):
                before = process.links
                process.links = {
                    k: v for k, v in before.items() if k != self.key and v[1] >= now - HEARTBEAT_TTL
                }
                process.connections = live_connections(process, now)
                silent = process.last_beat < now - HEARTBEAT_TTL
                if exclusive or silent or process.connections <= 0:
                    await self._store.delete_process(process.wid)
                    gone += 1
                elif process.links != before:
                    await self._store.put_process(process)
        return gone

    def _current(self, process: Process, now: float) -> bool:
        """Whether this server's link of ``process`` counts what is open now, and is fresh."""
        here = self._open(process.wid)
        count, stamp = self._link(process)
        return count == here and now - stamp < LINK_FRESH

    def _link(self, process: Process) -> tuple[int, float]:
        link = process.links.get(self.key)
        return (int(link[0]), link[1]) if link else (0, 0.0)

    def _count(self, process: Process, now: float) -> None:
        """Write this server's link of ``process`` and recount its connections."""
        here = self._open(process.wid)
        if here > 0:
            process.links[self.key] = [here, now]
        else:
            process.links.pop(self.key, None)
        process.connections = live_connections(process, now)

    async def hello(self, wid: str, hello: dict[str, Any]) -> Process:
        """Register a connection of process ``wid``; the first HELLO's details win."""
        async with self._lock(wid):
            now = self._clock()
            process = await self._store.get_process(wid)
            if process is not None and self._open(wid) > 0 and self._current(process, now):
                process.connections = live_connections(process, now)
                return process
            if process is None or live_connections(process, now) <= 0:
                # ``hello`` has Faktory's field types (server.connection.parse_hello); rss_kb
                # is Werk's own and ignored unless it is an integer.
                rss_kb = hello.get("rss_kb")
                process = Process(
                    wid=wid,
                    hostname=hello.get("hostname", ""),
                    pid=hello.get("pid", 0),
                    labels=list(hello.get("labels", [])),
                    started_at=now,
                    rss_kb=rss_kb if isinstance(rss_kb, int) and is_int64(rss_kb) else 0,
                    server=self._server,
                )
            process.last_beat = now
            self._count(process, now)
            await self._store.put_process(process)
            return process

    async def beat(self, wid: str, wanted: str, rss_kb: int | None) -> str | None:
        """Record a heartbeat; return the process state, or ``None`` for an unknown wid."""
        async with self._lock(wid):
            process = await self._store.get_process(wid)
            if process is None:
                return None
            now = self._clock()
            process.last_beat = now
            process.state = advance(process.state, wanted)
            if rss_kb is not None:
                process.rss_kb = rss_kb
            self._count(process, now)
            await self._store.put_process(process)
            return process.state

    async def signal(self, wid: str | None, state: str) -> int:
        """Ask one process (``None``: every process) to go quiet or terminate."""
        count = 0
        for listed in await self._store.processes():
            if wid is None or listed.wid == wid:
                async with self._lock(listed.wid):
                    process = await self._store.get_process(listed.wid)
                    if process is not None:
                        process.state = advance(process.state, state)
                        await self._store.put_process(process)
                        count += 1
        return count

    async def state(self, wid: str) -> str | None:
        """Return the state of a process, or ``None`` if it is unknown."""
        process = await self._store.get_process(wid)
        return None if process is None else process.state

    async def disconnect(self, wid: str) -> None:
        """Note that a connection of ``wid`` closed (it is no longer counted as open);
        forget the process when no server holds a connection of it."""
        async with self._lock(wid):
            process = await self._store.get_process(wid)
            now = self._clock()
            if process is None or (self._open(wid) > 0 and self._current(process, now)):
                return
            self._count(process, now)
            if process.connections <= 0:
                await self._store.delete_process(wid)
            else:
                await self._store.put_process(process)

    async def refresh(self, wids: set[str]) -> None:
        """Rewrite this server's link of each process in ``wids`` (those with connections
        open here), so other servers keep counting them."""
        for wid in wids:
            async with self._lock(wid):
                process = await self._store.get_process(wid)
                if process is not None:
                    self._count(process, self._clock())
                    await self._store.put_process(process)

    async def reap(self) -> list[str]:
        """Forget processes silent for over 60 s; return their wids."""
        cutoff = self._clock() - HEARTBEAT_TTL
        gone = []
        for listed in await self._store.processes():
            if listed.last_beat < cutoff:
                async with self._lock(listed.wid):
                    process = await self._store.get_process(listed.wid)
                    if process is not None and process.last_beat < cutoff:
                        await self._store.delete_process(listed.wid)
                        gone.append(listed.wid)
        return gone

    async def listing(self) -> list[dict[str, Any]]:
        """Return :meth:`list` as PROCESSES reply entries (:func:`process_doc`), each with
        its ``busy`` count of reservations."""
        counts, capped = await busy_counts(self._store)
        return [process_doc(p, counts.get(p.wid, 0), capped) for p in await self.list()]

    async def list(self) -> list[Process]:
        """Return every known process, the most recently started first, each with its
        ``connections`` counted now (stale links left out). On a shared store a process
        whose connections were all on servers that are gone is left out too (its record
        stays until it is silent for 60 s; a HELLO to a running server shows it again)."""
        now = self._clock()
        found = await self._store.processes()
        servers = await self._live()
        shown = []
        for process in found:
            counted = live_connections(process, now)
            process.connections = live_connections(process, now, servers)
            if process.connections > 0 or counted <= 0:
                shown.append(process)
        return sorted(shown, key=lambda p: -p.started_at)

    async def announce(self) -> None:
        """Rewrite this server's liveness record (every ``SERVER_BEAT`` seconds)."""
        if not self.exclusive:
            await self.servers.announce()

    async def stop(self) -> None:
        """A clean stop: delete this server's liveness record and its links, and forget
        the processes left with no link written in the last 60 s. Call it once the
        connections are closed, and the periodic tasks (which rewrite the record) stopped."""
        if self.exclusive:
            return
        await self.servers.withdraw()
        now = self._clock()
        for listed in await self._store.processes():
            if self.key not in listed.links:
                continue
            async with self._lock(listed.wid):
                process = await self._store.get_process(listed.wid)
                if process is None:
                    continue
                process.links.pop(self.key, None)
                process.connections = live_connections(process, now)
                if process.connections <= 0:
                    await self._store.delete_process(process.wid)
                else:
                    await self._store.put_process(process)
