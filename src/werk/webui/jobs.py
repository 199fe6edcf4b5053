"""Finding a job by jid from every page, and the wording of a job's retry history.

``GET /find?jid=<jid>`` (the search box in every page's header) redirects to
``/jobs/<jid>``, which shows the job wherever it is: running, waiting in a queue, or in
the retry, scheduled or dead set (then it redirects to that set's job page, where its
actions are), or, once it ended, its kept result or last error if it asked for them
(``custom.result_ttl``, Werk's job results). Queues have no index by jid, so each is
searched up to its first :data:`~werk.manager.queries.FIND_SCAN` entries.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from werk.job import DEFAULT_RETRY
from werk.webui.i18n import N_, translate
from werk.webui.render import redirect

if TYPE_CHECKING:
    from werk.webui.ui import Ui

MAX_JID = 200
SET_PATHS = {"retries": "retries", "scheduled": "scheduled", "dead": "dead"}
FINISHED = ("succeeded", "failed", "dead")
"""Outcomes of jobs that asked for their result (Werk's job results), shown once the job
is in no queue or set any more."""
WHERE_TITLES = {"queue": N_("Queues"), "working": N_("Busy")}


def retry_history(job: dict[str, Any], where: str) -> str:
    """Say in words how often a job failed and what its ``retry`` setting leaves it.

    Faktory's fields: ``retry`` (default 25; 0 discards on failure, negative sends
    straight to the dead set) and ``failure.retry_count`` (0 after the first failure).
    """
    retry = job.get("retry")
    limit = DEFAULT_RETRY if retry is None else _int(retry)
    failure = job.get("failure")
    if not isinstance(failure, dict):
        if limit == 0:
            return translate(N_("Never failed; a failure would discard it (retry: 0)."))
        if limit < 0:
            return translate(
                N_("Never failed; a failure would send it to the dead set (retry: %(retry)s)."),
                retry=limit,
            )
        return translate(N_("Never failed; up to %(limit)s retries if it does."), limit=limit)
    failures = _int(failure.get("retry_count", 0)) + 1
    if limit < 0:
        return translate(
            N_("Failed %(failures)s time(s); retries are off (retry: %(retry)s)."),
            failures=failures,
            retry=limit,
        )
    if where == "dead":
        return translate(
            N_("Failed %(failures)s time(s) and used all %(limit)s retries."),
            failures=failures,
            limit=limit,
        )
    return translate(
        N_("Failed %(failures)s time(s), retried %(retried)s of %(limit)s time(s)."),
        failures=failures,
        retried=failures - 1,
        limit=limit,
    )


def raw_job(request: Request, job: dict[str, Any]) -> Response | None:
    """With ``?format=json``, the job's stored body as it is (never re-encoded), else None."""
    if request.query_params.get("format") != "json":
        return None
    return Response(job["body"], media_type="application/json")


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def routes(ui: Ui) -> list[BaseRoute]:
    """Return the routes of the jid search and the job page."""

    async def find(request: Request) -> Response:
        jid = request.query_params.get("jid", "").strip()[:MAX_JID]
        if not jid:
            return redirect(request, "/")
        return redirect(request, f"/jobs/{_quote(jid)}")

    async def job_page(request: Request) -> Response:
        jid = request.path_params["jid"]
        job = await ui.queries.locate(jid)
        if job is None:
            outcome = await ui.queries.job_outcome(jid)
            if outcome["state"] in FINISHED:  # gone from every list: its kept result
                return await _outcome_page(request, outcome)
            raise HTTPException(
                404, translate(N_("No job %(jid)s: it may have finished."), jid=jid)
            )
        where = job["where"]
        if where in SET_PATHS:
            fmt = request.query_params.get("format")
            return redirect(request, f"/{SET_PATHS[where]}/{_quote(jid)}", format=fmt)
        raw = raw_job(request, job)
        if raw is not None:
            return raw
        context = {
            "page_name": "queues" if where == "queue" else "busy",
            "job": job,
            "where": where,
            "title": WHERE_TITLES[where],
            "back": f"/queues/{_quote(job['queue'])}" if where == "queue" else "/busy",
            "actions": [],
            "history": retry_history(job, where),
            "find_jid": jid,
        }
        return await ui.renderer.page(request, "job.html", context)

    async def _outcome_page(request: Request, outcome: dict[str, Any]) -> Response:
        context = {
            "page_name": "jobs",
            "outcome": outcome,
            "result_json": json.dumps(outcome.get("result"), indent=2, ensure_ascii=False),
            "find_jid": outcome["jid"],
        }
        return await ui.renderer.page(request, "job_outcome.html", context)

    return [Route("/find", find), Route("/jobs/{jid:path}", job_page)]


def _quote(text: str) -> str:
    return quote(str(text), safe="")
