"""The Cron and Throttles tabs: periodic jobs with next run, history and actions; throttles.

``POST /cron/<id>`` takes ``action`` = ``enqueue`` (push the entry's job now) |
``disable`` | ``enable`` (kept in the store across restarts, for every server; see
:meth:`werk.manager.cron.Cron.set_enabled`). Reads go through ``server.cron.status()``
and :func:`werk.manager.throttles.throttle_status`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from werk.errors import CommandError
from werk.manager.throttles import throttle_status
from werk.webui.audit import audit
from werk.webui.i18n import N_, translate
from werk.webui.render import redirect
from werk.webui.security import check_token

if TYPE_CHECKING:
    from werk.webui.ui import Ui

CRON_ACTIONS = ("enqueue", "disable", "enable")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        inner = ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def entry_toml(entry: dict[str, Any]) -> str:
    """Write a cron entry back in its configuration's terms (a ``[[cron]]`` table)."""
    lines = ["[[cron]]"]
    if entry["name"] != entry["job"].get("jobtype"):
        lines.append(f"name = {_toml_value(entry['name'])}")
    lines.append(f"schedule = {_toml_value(entry['schedule'])}")
    if entry["timezone"] != "UTC":
        lines.append(f"timezone = {_toml_value(entry['timezone'])}")
    if entry["catch_up"]:
        lines.append("catch_up = true")
    lines.append("[cron.job]")
    job = dict(entry["job"])
    lines.append(f"type = {_toml_value(job.pop('jobtype', ''))}")
    custom = job.pop("custom", None)
    lines += [f"{key} = {_toml_value(value)}" for key, value in job.items()]
    if custom:
        lines.append("[cron.job.custom]")
        lines += [f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in custom.items()]
    return "\n".join(lines)


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
                context = {"page_name": "cron", "entry": entry, "toml": entry_toml(entry)}
                return await ui.renderer.page(request, "cron_entry.html", context)
        raise HTTPException(404, translate(N_("No cron entry %(id)s."), id=wanted))

    async def cron_action(request: Request) -> Response:
        form = await check_token(request)
        wanted = request.path_params["id"]
        action = str(form.get("action", ""))
        if action not in CRON_ACTIONS:
            raise HTTPException(400, f"Unknown cron action {action!r}.")
        if server.cron.cron.entry(wanted) is None:
            raise HTTPException(404, translate(N_("No cron entry %(id)s."), id=wanted))
        try:
            if action == "enqueue":
                jid = await server.cron.cron.enqueue_now(wanted)
                audit(request, f"enqueue cron entry {wanted} now (jid {jid or 'refused'})")
            else:
                await server.cron.cron.set_enabled(wanted, action == "enable")
                audit(request, f"{action} cron entry {wanted}")
        except CommandError as exc:
            raise HTTPException(409, exc.message) from exc
        back = f"/cron/{quote(wanted, safe='')}" if form.get("back") == "entry" else "/cron"
        return redirect(request, back, done=action)

    async def throttles(request: Request) -> Response:
        rows = await throttle_status(server.manager)
        sizes = {row.name: row.size for row in await ui.queries.queues()}
        context = {"page_name": "throttles", "throttles": rows, "sizes": sizes}
        return await ui.renderer.page(request, "throttles.html", context)

    return [
        Route("/cron", cron, methods=["GET", "HEAD"]),
        Route("/cron/{id}", cron_entry, methods=["GET", "HEAD"]),
        Route("/cron/{id}", cron_action, methods=["POST"]),
        Route("/throttles", throttles, methods=["GET", "HEAD"]),
    ]
