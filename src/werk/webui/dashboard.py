"""The dashboard: live processed/failed chart, history for 7 to 180 days, server tiles.

Both charts are drawn in the browser by uPlot (vendored in ``static/vendor/uplot``): the
live one from ``/stats`` polls (``static/werk.js``), the history one from the counts per
day embedded in the page, which also lists them in a table for readers without script.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from werk.manager.queries import DayCount
from werk.webui.render import int_param

if TYPE_CHECKING:
    from werk.webui.ui import Ui

HISTORY_CHOICES = (7, 30, 90, 180)
DEFAULT_DAYS = 30


def history_json(days: list[DayCount]) -> str:
    """Return the history chart's data: day starts (Unix seconds, UTC) and both counts."""
    x = [datetime.fromisoformat(d.day).replace(tzinfo=UTC).timestamp() for d in days]
    data = {
        "x": x,
        "processed": [d.processed for d in days],
        "failed": [d.failures for d in days],
    }
    return json.dumps(data, separators=(",", ":"))


def routes(ui: Ui) -> list[BaseRoute]:
    """Return the dashboard's routes."""

    async def dashboard(request: Request) -> Response:
        days = min(int_param(request, "days", DEFAULT_DAYS), HISTORY_CHOICES[-1])
        history = await ui.queries.history(days)
        info = await ui.server.info()
        return await ui.renderer.page(
            request,
            "dashboard.html",
            {
                "page_name": "dashboard",
                "days": days,
                "choices": HISTORY_CHOICES,
                "history": history,
                "chart": history_json(history),
                "totals": {
                    "processed": sum(d.processed for d in history),
                    "failed": sum(d.failures for d in history),
                },
                "server": info["server"],
                "faktory": info["faktory"],
            },
        )

    return [Route("/", dashboard)]
