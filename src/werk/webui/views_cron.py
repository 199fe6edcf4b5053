"""The Cron and Throttles tabs: periodic jobs with next run and history, queue throttles.

Read-only pages over the server's query methods: ``server.cron.status()`` (see
:meth:`werk.manager.cron.Cron.status`) and :func:`werk.manager.throttles.throttle_status`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from werk.manager.throttles import throttle_status

if TYPE_CHECKING:
    from werk.webui.ui import Ui


def routes(ui: Ui) -> list[BaseRoute]:
    """Return the routes of the Cron and Throttles tabs."""
    server = ui.server

    async def cron(request: Request) -> Response:
        entries = await server.cron.status()
        return await ui.renderer.page(
            request, "cron.html", {"page_name": "cron", "entries": entries}
        )

    async def cron_entry(request: Request) -> Response:
        wanted = request.path_params["id"]
        for entry in await server.cron.status():
            if entry["id"] == wanted:
                return await ui.renderer.page(
                    request, "cron_entry.html", {"page_name": "cron", "entry": entry}
                )
        raise HTTPException(404, f"No cron entry {wanted}.")

    async def throttles(request: Request) -> Response:
        rows = await throttle_status(server.manager)
        sizes = {row.name: row.size for row in await ui.queries.queues()}
        context = {"page_name": "throttles", "throttles": rows, "sizes": sizes}
        return await ui.renderer.page(request, "throttles.html", context)

    return [
        Route("/cron", cron, methods=["GET", "HEAD"]),
        Route("/cron/{id}", cron_entry, methods=["GET", "HEAD"]),
        Route("/throttles", throttles, methods=["GET", "HEAD"]),
    ]
