"""The queue pages: the list with pause, resume and clear; one queue's jobs, paged.

``POST /queues/<name>`` takes ``action`` = ``pause`` | ``resume`` | ``delete`` (clear the
queue, as Faktory's form does) | ``delete_jobs`` (the selected ``jid`` values).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from werk.job import QUEUE_NAME
from werk.webui.audit import audit, jobs
from werk.webui.i18n import N_, translate
from werk.webui.render import int_param, redirect
from werk.webui.security import check_token

if TYPE_CHECKING:
    from werk.webui.ui import Ui


def routes(ui: Ui) -> list[BaseRoute]:
    """Return the queue pages' routes."""
    queries = ui.queries

    async def queue_list(request: Request) -> Response:
        rows = await queries.queues()
        return await ui.renderer.page(
            request, "queues.html", {"page_name": "queues", "queues": rows, "live": True}
        )

    async def queue_page(request: Request) -> Response:
        name = request.path_params["name"]
        page = await queries.queue_page(name, int_param(request, "page", 1))
        if not page.extra["known"]:
            raise HTTPException(404, translate(N_("No queue named %(name)s."), name=name))
        context = {"page_name": "queues", "queue": name, "jobs": page, "live": True}
        return await ui.renderer.page(request, "queue.html", context)

    async def queue_action(request: Request) -> Response:
        form = await check_token(request)
        name = request.path_params["name"]
        if not QUEUE_NAME.match(name):  # no such queue can exist (PUSH refuses the name)
            raise HTTPException(404, translate(N_("No queue named %(name)s."), name=name))
        action = str(form.get("action", ""))
        if action == "pause":
            await queries.pause(name)
            audit(request, f"pause queue {name}")
        elif action == "resume":
            await queries.resume(name)
            audit(request, f"resume queue {name}")
        elif action in ("delete", "clear"):
            count = await queries.clear(name)
            audit(request, f"clear queue {name} ({jobs(count)})")
            return redirect(request, "/queues", done="clear")
        elif action == "delete_jobs":
            jids = [str(j) for j in form.getlist("jid")]
            count = await queries.delete_queued(name, jids)
            audit(request, f"delete {jobs(count)} from queue {name}")
            page = form.get("page")
            return redirect(request, f"/queues/{_quote(name)}", page=page, done="delete", n=count)
        else:
            raise HTTPException(400, f"Unknown queue action {action!r}.")
        back = "/queues" if form.get("back") != "queue" else f"/queues/{_quote(name)}"
        return redirect(request, back, done=action)

    return [
        Route("/queues", queue_list),
        Route("/queues/{name}", queue_page, methods=["GET", "HEAD"]),
        Route("/queues/{name}", queue_action, methods=["POST"]),
    ]


def _quote(name: str) -> str:
    return quote(name, safe="")
