"""The Batches tab (Faktory Enterprise batches): every batch kept, and one batch's detail.

The list shows each batch's state (open: not committed yet; running; complete: every job
ran, some failed; success), its job counts (total, pending, failed) and its callbacks'
state. Batches come from :func:`werk.manager.batches.batches_of`: committed ones are kept
30 days, open ones 30 minutes, as Faktory does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from werk.errors import CommandError
from werk.manager.batches import Batches, batches_of
from werk.manager.paging import cut
from werk.webui.i18n import N_, translate
from werk.webui.render import int_param

if TYPE_CHECKING:
    from werk.webui.ui import Ui

STATES = {
    "open": N_("open"),
    "running": N_("running"),
    "complete": N_("complete"),
    "success": N_("success"),
}
CALLBACK_STATES = {"": N_("not yet"), "enqueued": N_("enqueued"), "done": N_("done")}


def routes(ui: Ui) -> list[BaseRoute]:
    """Return the Batches tab's routes."""

    def subsystem() -> Batches | None:
        try:
            return batches_of(ui.server.manager)
        except CommandError:
            return None

    async def listing(request: Request) -> Response:
        batches = subsystem()
        rows = await batches.listing(ui.server.manager.clock()) if batches else []
        page = cut(rows, int_param(request, "page", 1))
        context = {
            "page_name": "batches",
            "batches": page,
            "states": STATES,
            "callback_states": CALLBACK_STATES,
            "live": True,
        }
        return await ui.renderer.page(request, "batches.html", context)

    async def detail(request: Request) -> Response:
        bid = request.path_params["bid"]
        batches = subsystem()
        batch = await batches.overview(bid, ui.server.manager.clock()) if batches else None
        if batch is None:
            raise HTTPException(404, translate(N_("No batch %(bid)s."), bid=bid))
        context = {
            "page_name": "batches",
            "batch": batch,
            "states": STATES,
            "callback_states": CALLBACK_STATES,
            "find_jid": "",
        }
        return await ui.renderer.page(request, "batch.html", context)

    return [
        Route("/batches", listing, methods=["GET", "HEAD"]),
        Route("/batches/{bid}", detail, methods=["GET", "HEAD"]),
    ]
