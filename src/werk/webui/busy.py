"""The busy page: connected worker processes with quiet and stop, and the jobs running now.

``POST /busy`` takes ``wid`` (a process id, or ``all``) and ``signal`` = ``quiet`` |
``terminate``; the process learns it on its next heartbeat, as with Faktory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from werk.webui.audit import audit
from werk.webui.render import int_param, redirect
from werk.webui.security import check_token

if TYPE_CHECKING:
    from werk.webui.ui import Ui

SIGNALS: dict[str, Literal["quiet", "terminate"]] = {
    "quiet": "quiet",
    "terminate": "terminate",
    "stop": "terminate",
}


def routes(ui: Ui) -> list[BaseRoute]:
    """Return the busy page's routes."""
    queries = ui.queries

    async def busy(request: Request) -> Response:
        processes = await queries.processes()
        jobs = await queries.working_page(int_param(request, "page", 1))
        return await ui.renderer.page(
            request,
            "busy.html",
            {"page_name": "busy", "processes": processes, "jobs": jobs, "live": True},
        )

    async def signal(request: Request) -> Response:
        form = await check_token(request)
        state = SIGNALS.get(str(form.get("signal", "")))
        wid = str(form.get("wid", ""))
        if state is None or not wid:
            raise HTTPException(400, "Expected wid=<wid|all> and signal=quiet|terminate.")
        count = await queries.signal(None if wid == "all" else wid, state)
        who = "every process" if wid == "all" else f"process {wid}"
        audit(request, f"{state} {who} ({count} told)")
        return redirect(request, "/busy", done=state, n=count)

    return [
        Route("/busy", busy, methods=["GET", "HEAD"]),
        Route("/busy", signal, methods=["POST"]),
    ]
