"""Worker processes: registration at HELLO, heartbeats, quiet and terminate, expiry.

A process is known by its ``wid``; several connections may share one. Its state moves only
forward: running (``""``) -> ``quiet`` -> ``terminate``. A process silent for more than
60 seconds is forgotten and its connections are closed. The records live in the store, so
every server sharing a backend shows every process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from werk.protocol.fields import is_int64
from werk.storage.base import Process, Store

HEARTBEAT_TTL = 60.0
STATES = ("", "quiet", "terminate")


def advance(current: str, wanted: str) -> str:
    """Return the state after asking to move from ``current`` to ``wanted`` (never back)."""
    if wanted not in STATES:
        return current
    return wanted if STATES.index(wanted) > STATES.index(current) else current


class Processes:
    """The registry of worker processes, over the store's process records."""

    def __init__(self, store: Store, server: str, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._server = server
        self._clock = clock

    async def hello(self, wid: str, hello: dict[str, Any]) -> Process:
        """Register a connection of process ``wid``; the first HELLO's details win."""
        now = self._clock()
        process = await self._store.get_process(wid)
        if process is None:
            # ``hello`` has Faktory's field types (server.connection.parse_hello); rss_kb is
            # Werk's own and ignored unless it is an integer.
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
        process.connections += 1
        await self._store.put_process(process)
        return process

    async def beat(self, wid: str, wanted: str, rss_kb: int | None) -> str | None:
        """Record a heartbeat; return the process state, or ``None`` for an unknown wid."""
        process = await self._store.get_process(wid)
        if process is None:
            return None
        process.last_beat = self._clock()
        process.state = advance(process.state, wanted)
        if rss_kb is not None:
            process.rss_kb = rss_kb
        await self._store.put_process(process)
        return process.state

    async def signal(self, wid: str | None, state: str) -> int:
        """Ask one process (``None``: every process) to go quiet or terminate."""
        targets = await self._store.processes()
        count = 0
        for process in targets:
            if wid is None or process.wid == wid:
                process.state = advance(process.state, state)
                await self._store.put_process(process)
                count += 1
        return count

    async def state(self, wid: str) -> str | None:
        """Return the state of a process, or ``None`` if it is unknown."""
        process = await self._store.get_process(wid)
        return None if process is None else process.state

    async def disconnect(self, wid: str) -> None:
        """Note that a connection of ``wid`` closed; forget the process with its last one."""
        process = await self._store.get_process(wid)
        if process is None:
            return
        process.connections -= 1
        if process.connections <= 0:
            await self._store.delete_process(wid)
        else:
            await self._store.put_process(process)

    async def reap(self) -> list[str]:
        """Forget processes silent for over 60 s; return their wids."""
        cutoff = self._clock() - HEARTBEAT_TTL
        gone = [p.wid for p in await self._store.processes() if p.last_beat < cutoff]
        for wid in gone:
            await self._store.delete_process(wid)
        return gone

    async def list(self) -> list[Process]:
        """Return every known process, the most recently started first."""
        return sorted(await self._store.processes(), key=lambda p: -p.started_at)
