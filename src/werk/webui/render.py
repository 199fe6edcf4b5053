"""Page rendering: the Jinja2 environment, display filters and the shared page context.

Every page gets the summary bar, the proxy prefix (``url()`` prefixes a path with it), the
CSRF token for its forms, and the server line of the footer.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from werk import __version__
from werk.job import FIRST_TIME, LAST_TIME, parse_time
from werk.manager.queries import Queries
from werk.webui import i18n
from werk.webui.i18n import N_
from werk.webui.security import CSRF_FIELD


def prefix_of(request: Request) -> str:
    """Return the ``X-Script-Name`` prefix recorded by the guard (``""`` when none)."""
    prefix: str = request.scope.get("state", {}).get("prefix", "")
    return prefix


def to_ts(value: Any) -> float | None:
    """Return Unix seconds from a number or an RFC 3339 string, else ``None`` (also for a
    time outside the years 0001 to 9999, which a store may hold from before Werk refused
    them: a page never fails for one job)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not FIRST_TIME <= value <= LAST_TIME:
            return None
        return float(value)
    if isinstance(value, str) and value:
        try:
            return parse_time(value)
        except ValueError:
            return None
    return None


def utc(value: Any) -> str:
    """Format a time as ``YYYY-MM-DD HH:MM:SS UTC`` (``""`` when there is none)."""
    ts = to_ts(value)
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def span(seconds: float) -> str:
    """Format a duration compactly: ``45s``, ``3m 12s``, ``5h 2m``, ``12d 4h``."""
    s = int(abs(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def relative(value: Any) -> str:
    """Format a time relative to now: ``in 5m 3s`` or ``2h 1m ago``."""
    ts = to_ts(value)
    if ts is None:
        return ""
    delta = ts - time.time()
    if delta > 0:
        return i18n.translate(N_("in %(span)s"), span=span(delta))
    return i18n.translate(N_("%(span)s ago"), span=span(delta))


def number(value: int | float) -> str:
    """Format a count with thousands separators."""
    return f"{value:,}"


LONG_TEXT = 400
"""Values longer than this (characters) are shown collapsed on the job page."""


def pretty(value: Any) -> str:
    """Show a value as text: a string as itself, anything else as indented JSON with its
    characters unescaped (``O'Brien & Zürich <x>``, never ``O\\u0027Brien``); the page's
    HTML escaping still applies."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


def quote_any(value: Any) -> str:
    """URL-quote a value for a link, whatever its type (a missing one is ``""``): a job
    with an odd field must not fail its whole page."""
    if value is None or isinstance(value, jinja2.Undefined):
        return ""
    return quote(value if isinstance(value, str) else str(value))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("werk.webui", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_callables(  # type: ignore[attr-defined]  # added by the extension
        i18n.gettext, i18n.ngettext, newstyle=True
    )
    env.filters.update(
        utc=utc, relative=relative, number=number, span=span, q=quote_any, pretty=pretty
    )
    env.globals["LONG_TEXT"] = LONG_TEXT
    return env


class Renderer:
    """Renders pages with the shared context.

    Args:
        queries: the query API (for the summary bar).
        binding: the server's command port binding, shown in the footer.
    """

    def __init__(self, queries: Queries, binding: str) -> None:
        self.queries = queries
        self.binding = binding
        self.templates = Jinja2Templates(env=_environment())

    async def page(
        self, request: Request, name: str, context: dict[str, Any], status: int = 200
    ) -> Response:
        """Render template ``name`` with ``context`` plus the shared page context."""
        prefix = prefix_of(request)
        lang = i18n.choose(request.headers.get("accept-language", ""))
        i18n.use(lang)

        def url(path: str, **params: Any) -> str:
            query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
            return prefix + path + ("?" + query if query else "")

        shared = {
            "summary": await self.queries.summary(),
            "prefix": prefix,
            "url": url,
            "csrf_field": CSRF_FIELD,
            "csrf": request.scope.get("state", {}).get("csrf", ""),
            "version": __version__,
            "binding": self.binding,
            "now": time.time(),
            "path": request.url.path,
            "notice": notice(request),
            "lang": lang,
        }
        return self.templates.TemplateResponse(request, name, {**shared, **context}, status)


MAX_INT_PARAM = 10_000_000
"""The largest page number (or day count) accepted from a query string."""

NOTICES = {
    "retry": N_("Moved %(n)s job(s) to their queues."),
    "add": N_("Added %(n)s job(s) to their queues."),
    "delete": N_("Deleted %(n)s job(s)."),
    "kill": N_("Moved %(n)s job(s) to the dead set."),
    "pause": N_("Paused the queue."),
    "resume": N_("Resumed the queue."),
    "clear": N_("Cleared the queue."),
    "quiet": N_("Told %(n)s process(es) to go quiet."),
    "terminate": N_("Told %(n)s process(es) to stop."),
    "enqueue": N_("Enqueued the cron entry's job now."),
    "disable": N_("Disabled the cron entry."),
    "enable": N_("Enabled the cron entry."),
}


def notice(request: Request) -> str:
    """Return the message for an action's redirect (``?done=<action>&n=<count>``)."""
    template = NOTICES.get(request.query_params.get("done", ""))
    if template is None:
        return ""
    count = request.query_params.get("n", "0")
    text = i18n.gettext(template)
    return text % {"n": int(count) if count.isdigit() else 0} if "%(n)s" in text else text


def redirect(request: Request, path: str, **params: Any) -> RedirectResponse:
    """Redirect (303, so the browser GETs) to ``path`` under the proxy prefix."""
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return RedirectResponse(prefix_of(request) + path + ("?" + query if query else ""), 303)


def int_param(request: Request, name: str, default: int) -> int:
    """Return a positive integer query parameter, or ``default``."""
    value = request.query_params.get(name, "")
    if not (value.isascii() and value.isdigit()) or int(value) <= 0:
        return default
    return min(int(value), MAX_INT_PARAM)
