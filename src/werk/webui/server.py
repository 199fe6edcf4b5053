"""Runs the web UI's ASGI app with uvicorn inside the server's own event loop."""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING

import uvicorn

from werk.webui.app import create_app

if TYPE_CHECKING:
    from werk.server.server import Server


class WebServer:
    """The HTTP side of a :class:`~werk.server.server.Server`."""

    def __init__(self, server: Server) -> None:
        self._app = create_app(server)
        self._uvicorn: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    async def start(self, host: str, port: int) -> int:
        """Bind and start serving; return the bound port."""
        sock = socket.create_server((host, port), reuse_port=False)
        sock.setblocking(False)
        self._socket = sock
        config = uvicorn.Config(
            self._app, log_level="warning", lifespan="off", access_log=False, log_config=None
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
