"""The web UI's guard: reverse-proxy prefix, HTTP Basic auth, cross-site request checks.

:class:`Guard` is pure ASGI middleware wrapped around the whole app. It

- strips an ``X-Script-Name`` prefix from the path and records it (``state["prefix"]``)
  so every link and redirect can carry it;
- asks for HTTP Basic credentials (any user name, the web password, realm "Werk") on
  every path except ``/static/`` and ``/health`` when a password is set;
- refuses (403) an unsafe request that a browser marks as cross-site (``Origin``, else
  ``Sec-Fetch-Site``, else ``Referer``);
- hands each browser a random CSRF token in a cookie (``state["csrf"]``), which every
  action form must echo back: :func:`check_token` compares the two (double-submit).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_COOKIE = "werk_csrf"
CSRF_FIELD = "csrf_token"
REALM = "Werk"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = ("/static/", "/health")
"""Paths served without a password: the assets and the health check."""
PREFIX = re.compile(r"\A(/[A-Za-z0-9._~\-]+)+\Z")


def script_name(headers: dict[bytes, bytes]) -> str:
    """Return the ``X-Script-Name`` prefix (``/a/b``, no trailing slash), or ``""``.

    Anything that is not a plain path is ignored, so a header cannot inject markup or a
    foreign host into links.
    """
    value = headers.get(b"x-script-name", b"").decode("latin-1").strip().rstrip("/")
    return value if PREFIX.match(value) else ""


def authorized(headers: dict[bytes, bytes], password: str) -> bool:
    """Return True if the ``Authorization`` header carries ``password`` (any user name)."""
    scheme, _, value = headers.get(b"authorization", b"").partition(b" ")
    if scheme.lower() != b"basic":
        return False
    try:
        decoded = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    _, sep, given = decoded.partition(b":")
    return bool(sep) and hmac.compare_digest(given, password.encode())


def _netloc(url: str) -> str:
    try:
        return urlsplit(url).netloc.lower()
    except ValueError:
        return ""


def cross_site(headers: dict[bytes, bytes]) -> bool:
    """Return True when a browser says the request came from another site.

    The ``Origin`` is compared with ``Host`` (and ``X-Forwarded-Host``, for proxies); a
    mismatch is forgiven only if the browser's ``Sec-Fetch-Site`` says ``same-origin``
    (a proxy rewrote ``Host``). Without ``Origin``, ``Sec-Fetch-Site`` decides, and without
    that the ``Referer``. A request with none of them (curl, scripts) is not cross-site;
    the CSRF token still guards it.
    """

    def header(name: bytes) -> str:
        return headers.get(name, b"").decode("latin-1").strip()

    hosts = {header(b"host").lower(), header(b"x-forwarded-host").lower()} - {""}
    fetch_site = header(b"sec-fetch-site").lower()
    origin = header(b"origin")
    if origin:
        if origin != "null" and _netloc(origin) in hosts:
            return False
        return fetch_site != "same-origin"
    if fetch_site:
        return fetch_site not in ("same-origin", "none")
    referer = header(b"referer")
    return bool(referer) and _netloc(referer) not in hosts


async def check_token(request: Request) -> FormData:
    """Read an action's form and check its CSRF token against the cookie.

    Raises:
        HTTPException: 403 when the token is missing or does not match.
    """
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not isinstance(sent, str) or not expected or not hmac.compare_digest(sent, expected):
        raise HTTPException(403, "The form's security token is missing or stale: reload the page.")
    return form


async def _plain(send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = text.encode()
    head = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": head + headers})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware: proxy prefix, Basic auth, cross-site refusal, CSRF cookie.

    Args:
        app: the wrapped application.
        password: returns the web password, or ``None`` for an open UI.
    """

    def __init__(self, app: ASGIApp, password: Callable[[], str | None]) -> None:
        self.app = app
        self.password = password

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        prefix = script_name(headers)
        path: str = scope["path"]
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            path = path[len(prefix) :] or "/"
        password = self.password()
        if password and not _open(path) and not authorized(headers, password):
            challenge = f'Basic realm="{REALM}", charset="UTF-8"'.encode()
            await _plain(send, 401, "Authentication required", [(b"www-authenticate", challenge)])
            return
        if scope["method"] not in SAFE_METHODS and cross_site(headers):
            await _plain(send, 403, "Cross-site request refused", [])
            return
        cookie = SimpleCookie(headers.get(b"cookie", b"").decode("latin-1"))
        token = cookie[CSRF_COOKIE].value if CSRF_COOKIE in cookie else ""
        fresh = not token
        if fresh:
            token = secrets.token_urlsafe(24)
            headers[b"cookie"] = _with_cookie(headers.get(b"cookie", b""), token)
        state: dict[str, Any] = {**scope.get("state", {}), "prefix": prefix, "csrf": token}
        inner = {
            **scope,
            "path": path,
            "raw_path": path.encode(),
            "headers": list(headers.items()),
            "state": state,
        }
        if not fresh:
            await self.app(inner, receive, send)
            return
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        set_cookie = (
            f"{CSRF_COOKIE}={token}; Path={prefix or '/'}; HttpOnly; SameSite=Lax{secure}"
        ).encode()

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], (b"set-cookie", set_cookie)]}
            await send(message)

        await self.app(inner, receive, send_with_cookie)


def _open(path: str) -> bool:
    return path == "/health" or path.startswith("/static/")


def _with_cookie(existing: bytes, token: str) -> bytes:
    pair = f"{CSRF_COOKIE}={token}".encode()
    return existing + b"; " + pair if existing else pair
