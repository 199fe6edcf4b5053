"""What the server's parts see of the running server and of a connection: two protocols.

The server (:mod:`werk.server.server`) builds connections, the periodic tasks, cron,
backups and statsd, and each of them reads the server's state back. So that imports point
one way (server → connection → handlers → state), those parts depend on the protocols
here, never on the :class:`~werk.server.server.Server` or
:class:`~werk.server.connection.Connection` classes themselves; mypy checks that the
classes keep matching them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from werk.manager import Manager
from werk.manager.processes import Processes
from werk.server.config import ServerConfig
from werk.server.outbox import Outbox
from werk.server.timings import CommandTimings
from werk.storage.base import Store

ReloadHook = Callable[[ServerConfig], Awaitable[None] | None]


class ConnectionState(Protocol):
    """A client connection as the handlers and the server see it."""

    wid: str
    """The worker process id the connection's HELLO gave ("" for a producer)."""
    closing: bool
    """Set to close the connection after the current reply (END, a reaped process)."""
    busy: bool
    """Whether a command is being handled right now (a graceful stop lets it finish)."""

    def alive(self) -> bool:
        """Whether the client is still connected."""

    def release(self) -> None:
        """Send the replies of the commands pipelined before this one at the loop's next
        pass: called by a command before it waits (FETCH with no job, RESULT or LIMIT with
        a timeout), so that those replies are not held back until it ends."""

    def abort(self) -> None:
        """Close the socket at once."""


class ServerState(Protocol):
    """The running server as its connections, handlers and periodic services see it."""

    config: ServerConfig
    manager: Manager
    store: Store
    processes: Processes
    process_states: dict[str, str]
    """Each worker process's state as its last BEAT on this server saw it."""
    command_count: int
    timings: CommandTimings
    outbox: Outbox
    """Command replies, written together once per pass of the event loop."""
    reload_hooks: list[ReloadHook]
    """Called with the new configuration after SIGHUP."""
    stopping: bool

    @property
    def connection_count(self) -> int:
        """The number of identified connections."""

    def connected_wids(self) -> set[str]:
        """The worker processes with a connection open on this server."""

    def admit(self, conn: ConnectionState) -> bool:
        """Count an identified connection in, unless the limit is reached."""

    def release(self, conn: ConnectionState) -> None:
        """Count a closing connection out."""

    async def auth_failed(self, peer: str) -> None:
        """Log a wrong password from ``peer`` (``host:port``) and slow the client down."""

    async def idle_fetch(self) -> None:
        """What a FETCH from a quiet or terminating process does: wait, then answer nil."""

    def close_process(self, wid: str) -> int:
        """Close every connection of a worker process; return how many were closed."""

    async def info(self) -> dict[str, Any]:
        """Return the INFO document."""
