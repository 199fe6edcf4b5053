"""The set pages: Retries, Scheduled and Dead (``/morgue`` is Faktory's name for it).

A listing is paged and ordered by time, and filtered in the store by ``queue``,
``jobtype`` and ``q`` (a substring of the job). ``POST /<set>`` takes ``action`` =
``retry`` | ``add`` | ``delete`` | ``kill`` for the selected ``jid`` values, or the same
with ``_all`` for every job matching the filter sent along. ``/<set>/<jid>`` shows one
job; a POST there acts on that job alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.datastructures import FormData, QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from werk.manager.queries import SET_ACTIONS, SetFilter, SetName
from werk.webui.audit import audit, jobs
from werk.webui.i18n import N_, translate
from werk.webui.jobs import raw_job, retry_history
from werk.webui.render import int_param, redirect
from werk.webui.security import check_token

if TYPE_CHECKING:
    from werk.webui.ui import Ui

PATHS: dict[str, SetName] = {
    "retries": "retries",
    "scheduled": "scheduled",
    "dead": "dead",
    "morgue": "dead",
}
TITLES: dict[SetName, str] = {
    "retries": N_("Retries"),
    "scheduled": N_("Scheduled"),
    "dead": N_("Dead"),
}
LABELS = {
    "retry": N_("Retry now"),
    "add": N_("Add to queue"),
    "delete": N_("Delete"),
    "kill": N_("Kill"),
}
MAX_FILTER = 200


def set_filter(params: QueryParams | FormData) -> SetFilter:
    """Read the ``queue``, ``jobtype`` and ``q`` filter fields (blank ones mean any)."""

    def field(name: str) -> str | None:
        value = params.get(name)
        text = value.strip() if isinstance(value, str) else ""
        if len(text) > MAX_FILTER:
            # Cutting it short would match more jobs than asked for ("all matching").
            raise HTTPException(400, f"The {name} filter is longer than {MAX_FILTER} characters.")
        return text or None

    return SetFilter(queue=field("queue"), jobtype=field("jobtype"), text=field("q"))


def filter_params(where: SetFilter) -> dict[str, Any]:
    """Return the query parameters that reproduce a filter."""
    return {"queue": where.queue, "jobtype": where.jobtype, "q": where.text}


def _set_of(request: Request) -> tuple[str, SetName]:
    path = request.url.path.strip("/").split("/")[0]
    return ("dead" if path == "morgue" else path), PATHS[path]


def routes(ui: Ui) -> list[BaseRoute]:
    """Return the set pages' routes (``/retries``, ``/scheduled``, ``/dead``, ``/morgue``)."""
    queries = ui.queries

    async def listing(request: Request) -> Response:
        base, name = _set_of(request)
        where = set_filter(request.query_params)
        page = await queries.set_page(name, int_param(request, "page", 1), where)
        context = {
            "page_name": base,
            "base": base,
            "set_name": name,
            "title": TITLES[name],
            "jobs": page,
            "where": where,
            "filtered": any(filter_params(where).values()),
            "filter_params": filter_params(where),
            "actions": [(a, LABELS[a]) for a in SET_ACTIONS[name]],
            "live": True,
        }
        return await ui.renderer.page(request, "set.html", context)

    async def bulk(request: Request) -> Response:
        form = await check_token(request)
        base, name = _set_of(request)
        action, _, scope = str(form.get("action", "")).partition("_")
        where = set_filter(form)
        jids = None if scope == "all" else [str(j) for j in form.getlist("jid")]
        count = await _act(name, action, jids, where)
        details = ["every match"] if scope == "all" else []
        details += [f"{k}={v}" for k, v in filter_params(where).items() if v]
        notes = f" ({', '.join(details)})" if details else ""
        audit(request, f"{action} {jobs(count)} of the {name} set{notes}")
        page = form.get("page") if scope != "all" else None
        return redirect(
            request, f"/{base}", **filter_params(where), page=page, done=action, n=count
        )

    async def detail(request: Request) -> Response:
        base, name = _set_of(request)
        jid = request.path_params["jid"]
        job = await queries.set_job(name, jid)
        if job is None:
            message = N_("No job %(jid)s in %(set)s: it may have moved on.")
            raise HTTPException(404, translate(message, jid=jid, set=translate(TITLES[name])))
        raw = raw_job(request, job)
        if raw is not None:
            return raw
        context = {
            "page_name": base,
            "base": base,
            "back": f"/{base}",
            "where": name,
            "title": TITLES[name],
            "job": job,
            "actions": [(a, LABELS[a]) for a in SET_ACTIONS[name]],
            "history": retry_history(job, name),
            "find_jid": jid,
        }
        return await ui.renderer.page(request, "job.html", context)

    async def act_one(request: Request) -> Response:
        form = await check_token(request)
        base, name = _set_of(request)
        action = str(form.get("action", ""))
        jid = request.path_params["jid"]
        count = await _act(name, action, [jid], None)
        audit(request, f"{action} {jobs(count)} of the {name} set (jid {jid})")
        return redirect(request, f"/{base}", done=action, n=count)

    async def _act(
        name: SetName, action: str, jids: list[str] | None, where: SetFilter | None
    ) -> int:
        if action not in SET_ACTIONS[name]:
            raise HTTPException(400, f"{TITLES[name]} has no action {action!r}.")
        return await queries.act(name, action, jids, where)

    result: list[BaseRoute] = []
    for path in PATHS:
        result += [
            Route(f"/{path}", listing, methods=["GET", "HEAD"]),
            Route(f"/{path}", bulk, methods=["POST"]),
            Route(f"/{path}/{{jid}}", detail, methods=["GET", "HEAD"]),
            Route(f"/{path}/{{jid}}", act_one, methods=["POST"]),
        ]
    return result
