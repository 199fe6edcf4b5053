"""The web UI's ASGI application: the route table, static files and the guard.

Pages and actions live in one module per page group (:mod:`~werk.webui.dashboard`,
:mod:`~werk.webui.queues`, :mod:`~werk.webui.busy`, :mod:`~werk.webui.sets`,
:mod:`~werk.webui.batches`, :mod:`~werk.webui.views_metrics`, :mod:`~werk.webui.jobs`,
:mod:`~werk.webui.views_cron`). Every view
reads and acts through :class:`~werk.manager.queries.Queries`, never the store; the server
object is used only for its INFO document, ``/health`` and its configuration.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from werk.job import format_time
from werk.manager.queries import Queries
from werk.webui import i18n
from werk.webui.render import Renderer
from werk.webui.security import Guard
from werk.webui.ui import Ui

if TYPE_CHECKING:
    from werk.server.server import Server

STATIC_MAX_AGE = 3600


class Static(StaticFiles):
    """The packaged static files, cached for an hour as Faktory does."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        """Serve a file with a ``Cache-Control`` header."""
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["cache-control"] = f"public, max-age={STATIC_MAX_AGE}"
        return response


class Language:
    """ASGI middleware: pick the request's language from ``Accept-Language`` first, so
    every message of the response (error details included) is in it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Set the language for this request, then pass it on."""
        if scope["type"] == "http":
            header = Headers(scope=scope).get("accept-language", "")
            i18n.use(i18n.choose(header))
        await self.app(scope, receive, send)


def _core_routes(server: Server) -> list[BaseRoute]:
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

    return [
        Route("/health", health),
        Route("/stats", stats),
        Mount("/static", Static(packages=[("werk.webui", "static")]), name="static"),
    ]


def create_app(server: Server) -> Starlette:
    """Build the web UI application for a server."""
    from werk.webui import (
        batches,
        busy,
        dashboard,
        jobs,
        metrics,
        queues,
        sets,
        views_cron,
        views_metrics,
    )

    queries = Queries(server.manager, server.processes)
    host, port = server.config.binding
    ui = Ui(server, queries, Renderer(queries, f"{host}:{server.port or port}"))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code in (403, 404, 405):
            return await ui.renderer.page(
                request,
                "error.html",
                {"status": exc.status_code, "detail": exc.detail},
                status=exc.status_code,
            )
        return PlainTextResponse(exc.detail, exc.status_code, exc.headers)

    routes = [
        *_core_routes(server),
        *dashboard.routes(ui),
        *queues.routes(ui),
        *busy.routes(ui),
        *sets.routes(ui),
        *metrics.routes(ui),
        *views_cron.routes(ui),
        *batches.routes(ui),
        *views_metrics.routes(ui),
        *jobs.routes(ui),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    app.add_middleware(Guard, password=lambda: web_password(server))
    app.add_middleware(Language)
    return app


def web_password(server: Server) -> str | None:
    """Return the password the web UI asks for: the web one, else the server's."""
    return server.config.web_password or server.config.password or None
