"""The dashboard: live processed/failed chart, history for 7 to 180 days, server tiles.

The live chart is drawn in the browser from ``/stats`` polls (``static/werk.js``); the
history chart is an inline SVG drawn here, so it needs no script at all.
"""

from __future__ import annotations

from dataclasses import dataclass
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
WIDTH = 800
HEIGHT = 180
PAD = 4


@dataclass(frozen=True, slots=True)
class HistoryChart:
    """SVG geometry of the history chart: polylines and their scale."""

    processed: str
    failed: str
    top: int
    width: int = WIDTH
    height: int = HEIGHT


def history_chart(days: list[DayCount]) -> HistoryChart:
    """Lay out processed and failed counts per day as two SVG polylines."""
    top = max([1, *(d.processed for d in days), *(d.failures for d in days)])
    step = (WIDTH - 2 * PAD) / max(1, len(days) - 1)

    def points(values: list[int]) -> str:
        return " ".join(
            f"{PAD + i * step:.1f},{HEIGHT - PAD - v / top * (HEIGHT - 2 * PAD):.1f}"
            for i, v in enumerate(values)
        )

    return HistoryChart(
        processed=points([d.processed for d in days]),
        failed=points([d.failures for d in days]),
        top=top,
    )


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
                "chart": history_chart(history),
                "totals": {
                    "processed": sum(d.processed for d in history),
                    "failed": sum(d.failures for d in history),
                },
                "server": info["server"],
                "faktory": info["faktory"],
            },
        )

    return [Route("/", dashboard)]
