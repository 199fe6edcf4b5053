"""Which Werk servers sharing a store are running: a liveness record per server.

Each server on a shared store (Redis, PostgreSQL) writes the record ``server:<name>:<port>``
when it starts and every :data:`SERVER_BEAT` seconds, with a :data:`SERVER_TTL` expiry, and
deletes it when it stops cleanly. A worker process's connection count
(:mod:`werk.manager.processes`) counts only the links of servers with a live record, so a
server that stopped, or crashed and was restarted on another port, stops counting at once
(a clean stop) or within :data:`SERVER_TTL` (a crash). A crashed server on the same machine
is known gone at once: its record names its pid, which no longer runs. This is Werk's own;
Faktory keeps its processes in memory and has one server per store.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from typing import Final

from werk.storage.base import Store

SERVER_PREFIX: Final = "server:"
"""Record key prefix of the liveness records (``server:<name>:<port>``)."""
SERVER_BEAT: Final = 5.0
"""Seconds between a server's rewrites of its liveness record."""
SERVER_TTL: Final = 20.0
"""Seconds a liveness record lives without a rewrite: a crashed server stops counting then."""


def machine_id() -> str:
    """Return what tells this machine and process namespace apart: the boot id and the pid
    namespace (Linux), or ``""`` where they are unknown (then no pid is checked)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot:
            return f"{boot.read().strip()}:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


def pid_running(pid: int) -> bool:
    """Return whether a process ``pid`` exists on this machine (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


class ServerRecords:
    """This server's liveness record, and the set of servers whose record is live.

    Args:
        store: the shared store.
        clock: Unix seconds.
    """

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock
        self.key = ""
        """This server's key (``<name>:<port>``); empty until :meth:`announce`."""
        self._value = json.dumps(
            {"host": socket.gethostname(), "machine": machine_id(), "pid": os.getpid()}
        ).encode()

    async def announce(self, key: str | None = None) -> None:
        """Write (or rewrite) this server's record, live for :data:`SERVER_TTL` seconds."""
        if key is not None:
            self.key = key
        if self.key:
            await self._store.put_record(
                SERVER_PREFIX + self.key, self._value, SERVER_TTL, self._clock()
            )

    async def withdraw(self) -> None:
        """Delete this server's record (a clean stop)."""
        if self.key:
            await self._store.delete_record(SERVER_PREFIX + self.key)

    async def live(self) -> set[str]:
        """Return the keys of the servers with a live record (this one always included).

        A record from this machine whose pid no longer runs is left out: that server
        crashed (or was killed) and a restart must not wait out its expiry. Read the
        process records before calling this, so a server started in between (its record
        is written before its first link) is not mistaken for a gone one.
        """
        here = machine_id()
        found = {self.key} if self.key else set()
        for key, raw in await self._store.records(SERVER_PREFIX, self._clock()):
            try:
                value = json.loads(raw)
                pid, machine = int(value["pid"]), str(value["machine"])
            except (ValueError, KeyError, TypeError):
                pid, machine = 0, ""
            if here and machine == here and pid != os.getpid() and not pid_running(pid):
                continue
            found.add(key.removeprefix(SERVER_PREFIX))
        return found
