"""Runs the web UI's ASGI app with uvicorn inside the server's own event loop."""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING

import uvicorn

from werk.webui.app import create_app

if TYPE_CHECKING:
    from werk.server.server import Server


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
    """The HTTP side of a :class:`~werk.server.server.Server`."""

    def __init__(self, server: Server) -> None:
        self._app = create_app(server)
        self._tls = server.tls
        self._uvicorn: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    async def start(self, host: str, port: int) -> int:
        """Bind and start serving; return the bound port."""
        sock = listen(host, port)
        self._socket = sock
        tls = self._tls
        config = uvicorn.Config(
            self._app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            log_config=None,
            # The command port's context: same certificate, TLS 1.2+, rotated on SIGHUP.
            ssl_context_factory=None if tls is None else (lambda _config, _default: tls),
        )
        config.load()
        self._uvicorn = uvicorn.Server(config)
        self._uvicorn.lifespan = config.lifespan_class(config)
        await self._uvicorn.startup(sockets=[sock])
        self._task = asyncio.create_task(self._uvicorn.main_loop(), name="werk-web")
        bound: int = sock.getsockname()[1]
        return bound

    async def stop(self) -> None:
        """Stop accepting requests and close the socket."""
        if self._uvicorn is None or self._task is None:
            return
        self._uvicorn.should_exit = True
        await self._task
        await self._uvicorn.shutdown(sockets=[self._socket] if self._socket else None)
