"""Runs the web UI's ASGI app with uvicorn inside the server's own event loop.

:class:`WebServer` is a server :class:`~werk.server.server.Subsystem`: whoever builds the
server registers it (:func:`werk.cli.server.build_server`), so the server never imports
the web UI.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from werk.server.startup import bind_error
from werk.webui.app import create_app

if TYPE_CHECKING:
    from werk.server.server import Server

log = logging.getLogger("werk.server")

HEAD_TIMEOUT = 10.0
"""Seconds a web UI connection has to send a request's head (request line and headers),
counted from the connection or from the end of its last response. uvicorn sets no such
limit: a client sending a header byte now and then kept its connection, and a file
descriptor the work port needs too, for ever (300 such connections were all still open
after 70 s)."""


class HeadDeadline(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head is late
    (:data:`HEAD_TIMEOUT`); a request whose head arrived may take as long as it needs."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the connection and the wait for its first request's head."""
        super().connection_made(transport)
        self._await_head()

    def on_response_complete(self) -> None:
        """Finish the response and start the wait for the next request's head."""
        super().on_response_complete()
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the wait, then let uvicorn close the connection."""
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)

    def _await_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        # A new request's head replaces ``cycle``: the same cycle when the time is up means
        # no head came.
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT, self._head_late, self.cycle)

    def _head_late(self, waited_after: object) -> None:
        self._head_timer = None
        if self.cycle is waited_after and not self.transport.is_closing():
            self.transport.close()


def listen(host: str, port: int) -> socket.socket:
    """Return a listening, non-blocking TCP socket.

    The socket is made with ``IPPROTO_TCP`` as its protocol (``socket.create_server``
    leaves 0): asyncio turns on ``TCP_NODELAY`` only for sockets that say TCP, and without
    it every keep-alive request waited ~40 ms for a delayed ACK (Nagle's algorithm).
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class WebServer:
    """The HTTP side of a :class:`~werk.server.server.Server`, on its ``web_binding``."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._uvicorn: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    async def start(self) -> None:
        """Bind ``web_binding`` and start serving; set the server's ``web_port``."""
        server = self._server
        assert server.config.web_binding is not None
        host, port = server.config.web_binding
        try:
            sock = listen(host, port)
        except OSError as exc:
            raise bind_error("the web UI", "-w", host, port, exc) from exc
        self._socket = sock
        tls = server.tls
        config = uvicorn.Config(
            create_app(server),
            log_level="warning",
            lifespan="off",
            access_log=False,
            log_config=None,
            http=HeadDeadline,
            # The command port's context: same certificate, TLS 1.2+, rotated on SIGHUP.
            ssl_context_factory=None if tls is None else (lambda _config, _default: tls),
        )
        config.load()
        self._uvicorn = uvicorn.Server(config)
        self._uvicorn.lifespan = config.lifespan_class(config)
        await self._uvicorn.startup(sockets=[sock])
        self._task = asyncio.create_task(self._uvicorn.main_loop(), name="werk-web")
        server.web_port = sock.getsockname()[1]

    async def stop(self) -> None:
        """Stop accepting requests and close the socket."""
        if self._uvicorn is None or self._task is None:
            return
        self._uvicorn.should_exit = True
        await self._task
        await self._uvicorn.shutdown(sockets=[self._socket] if self._socket else None)
