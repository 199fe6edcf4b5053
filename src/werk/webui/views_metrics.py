"""The Metrics tab, per job type as in Sidekiq 7: executions, failures and run time.

``/jobmetrics?hours=1|2|4|8`` lists every job type that ran in the window (most executions
first) with executions, failures, failure rate, mean, p50 and p95 run time (FETCH to
ACK/FAIL), and charts executions per minute of the ten busiest types. The numbers come
from :class:`werk.manager.jobmetrics.JobMetrics`, kept for 8 hours in the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from werk.manager.jobmetrics import HOURS, metrics_of, series_json
from werk.webui.render import int_param

if TYPE_CHECKING:
    from werk.webui.ui import Ui

DEFAULT_HOURS = 1


def milliseconds(value: float) -> str:
    """Format a run time: ``0.4 ms``, ``12 ms``, ``3.2 s``, ``4.5 min``."""
    if value < 10:
        return f"{value:.1f} ms"
    if value < 1000:
        return f"{value:.0f} ms"
    if value < 60_000:
        return f"{value / 1000:.1f} s"
    return f"{value / 60_000:.1f} min"


def routes(ui: Ui) -> list[BaseRoute]:
    """Return the Metrics tab's route."""

    async def page(request: Request) -> Response:
        hours = int_param(request, "hours", DEFAULT_HOURS)
        hours = hours if hours in HOURS else DEFAULT_HOURS
        metrics = metrics_of(ui.server.manager.middleware)
        rows, starts = await metrics.read(hours) if metrics else ([], [])
        context = {
            "page_name": "metrics",
            "hours": hours,
            "choices": HOURS,
            "rows": rows,
            "chart": series_json(rows, starts),
            "ms": milliseconds,
        }
        return await ui.renderer.page(request, "jobmetrics.html", context)

    return [Route("/jobmetrics", page, methods=["GET", "HEAD"])]
