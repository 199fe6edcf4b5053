"""The web UI's ASGI application: routes for ``/health`` and ``/stats`` (pages come later).

Every view reads through the server's manager and INFO document, never the store directly.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from werk.job import format_time

if TYPE_CHECKING:
    from werk.server.server import Server


def create_app(server: Server) -> Starlette:
    """Build the web UI application for a server."""

    async def health(request: Request) -> JSONResponse:
        from werk.server.server import DESCRIPTION, FAKTORY_VERSION

        return JSONResponse(
            {
                "now": format_time(time.time()),
                "server": {
                    "description": DESCRIPTION,
                    "faktory_version": FAKTORY_VERSION,
                    "connections": server.connection_count,
                    "command_count": server.command_count,
                },
            }
        )

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse(await server.info())

    return Starlette(routes=[Route("/health", health), Route("/stats", stats)])
