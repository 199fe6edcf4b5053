"""The Metrics tab, per job type as in Sidekiq 7: executions, failures and run time.

``/jobmetrics?hours=1|2|4|8`` lists every job type that ran in the window (most executions
first) with executions, failures, failure rate, mean, p50 and p95 run time (FETCH to
ACK/FAIL), and charts executions per minute of the ten busiest types;
``/jobmetrics/<jobtype>`` shows one type's executions and failures per minute and its
run-time histogram. The numbers come
from :class:`werk.manager.jobmetrics.JobMetrics`, kept for 8 hours in the store.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from werk.manager.jobmetrics import BOUNDS_MS, HOURS, TypeMetrics, metrics_of, series_json
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


def histogram_rows(metrics: TypeMetrics) -> list[tuple[str, int, float]]:
    """Return the run-time histogram as ``(upper bound, count, share of the largest)``
    rows, from the first bucket used to the last."""
    used = sorted(metrics.histogram)
    if not used:
        return []
    top = max(metrics.histogram.values())
    rows = []
    for index in range(used[0], used[-1] + 1):
        bound = BOUNDS_MS[index] if index < len(BOUNDS_MS) else BOUNDS_MS[-1] * 1.5
        count = metrics.histogram.get(index, 0)
        rows.append((milliseconds(bound), count, count / top))
    return rows


def type_json(metrics: TypeMetrics, starts: list[int]) -> str:
    """Return one job type's chart data: minutes, executions and failures."""
    index = {start: i for i, start in enumerate(starts)}
    executions, failures = [0] * len(starts), [0] * len(starts)
    for start, ran, failed in metrics.series:
        if start in index:
            executions[index[start]], failures[index[start]] = ran, failed
    data = {"x": starts, "processed": executions, "failed": failures}
    return json.dumps(data, separators=(",", ":"))


def routes(ui: Ui) -> list[BaseRoute]:
    """Return the Metrics tab's routes: every job type, and one job type."""

    async def read(request: Request) -> tuple[int, list[TypeMetrics], list[int]]:
        hours = int_param(request, "hours", DEFAULT_HOURS)
        hours = hours if hours in HOURS else DEFAULT_HOURS
        metrics = metrics_of(ui.server.manager.middleware)
        rows, starts = await metrics.read(hours) if metrics else ([], [])
        return hours, rows, starts

    async def page(request: Request) -> Response:
        hours, rows, starts = await read(request)
        context = {
            "page_name": "metrics",
            "hours": hours,
            "choices": HOURS,
            "rows": rows,
            "chart": series_json(rows, starts),
            "ms": milliseconds,
        }
        return await ui.renderer.page(request, "jobmetrics.html", context)

    async def one_type(request: Request) -> Response:
        jobtype = request.path_params["jobtype"]
        hours, rows, starts = await read(request)
        found = next((m for m in rows if m.jobtype == jobtype), None)
        context = {
            "page_name": "metrics",
            "hours": hours,
            "choices": HOURS,
            "jobtype": jobtype,
            "m": found,
            "chart": type_json(found, starts) if found else "",
            "histogram": histogram_rows(found) if found else [],
            "ms": milliseconds,
        }
        return await ui.renderer.page(request, "jobmetrics_type.html", context)

    return [
        Route("/jobmetrics", page, methods=["GET", "HEAD"]),
        Route("/jobmetrics/{jobtype:path}", one_type, methods=["GET", "HEAD"]),
    ]
