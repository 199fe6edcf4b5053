"""The guard: passwords, cross-site refusal, the CSRF token and the proxy prefix."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import SQLITE_ONLY
from tests.webui.conftest import Web, client_of, start_server
from werk.webui.security import authorized

PAGES = ["/", "/queues", "/queues/default", "/busy", "/retries", "/scheduled", "/dead", "/stats"]


@pytest.fixture
async def locked(tmp_path: Path) -> AsyncIterator[Web]:
    """A server whose web UI has its own password."""
    server = await start_server(tmp_path / "data", password="proto", web_password="s3cret")
    async with client_of(server) as client:
        yield Web(server, client)
    await server.stop()


@pytest.mark.parametrize("path", PAGES)
async def test_pages_need_the_password(locked: Web, path: str) -> None:
    await locked.server.manager.push({"jid": "job-000001", "jobtype": "A", "args": []})
    response = await locked.client.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Basic realm="Werk"')
    wrong = await locked.client.get(path, auth=("admin", "proto"))
    assert wrong.status_code == 401
    right = await locked.client.get(path, auth=("anyone", "s3cret"))
    assert right.status_code == 200


async def test_health_and_static_are_open(locked: Web) -> None:
    assert (await locked.client.get("/health")).status_code == 200
    assert (await locked.client.get("/static/werk.css")).status_code == 200


async def test_actions_need_the_password_too(locked: Web) -> None:
    response = await locked.client.post("/queues/default", data={"action": "delete"})
    assert response.status_code == 401


async def test_server_password_is_used_without_a_web_password(tmp_path: Path) -> None:
    server = await start_server(tmp_path / "data", password="proto")
    try:
        async with client_of(server) as client:
            assert (await client.get("/")).status_code == 401
            assert (await client.get("/", auth=("", "proto"))).status_code == 200
            assert (await client.get("/", headers={"Authorization": "Basic !!"})).status_code == 401
    finally:
        await server.stop()


@SQLITE_ONLY
async def test_action_without_a_token_is_refused(web: Web) -> None:
    await web.push("job-000001")
    await web.token()  # the browser holds the cookie, but the form lacks the token
    response = await web.client.post("/queues/default", data={"action": "delete"})
    assert response.status_code == 403
    assert (await web.stats())["total_enqueued"] == 1


@SQLITE_ONLY
async def test_action_with_a_wrong_token_is_refused(web: Web) -> None:
    await web.fail("retry-000001")
    await web.token()
    response = await web.client.post("/retries", data={"action": "delete_all", "csrf_token": "x"})
    assert response.status_code == 403
    assert (await web.stats())["sets"]["retries"] == 1


@SQLITE_ONLY
async def test_action_without_the_cookie_is_refused(web: Web) -> None:
    await web.push("job-000001")
    token = await web.token()
    web.client.cookies.clear()
    data = {"action": "delete", "csrf_token": token}
    assert (await web.client.post("/queues/default", data=data)).status_code == 403


CROSS_SITE = [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Referer": "https://evil.example/page"},
    {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
]


@SQLITE_ONLY
@pytest.mark.parametrize("headers", CROSS_SITE)
async def test_cross_site_action_is_refused_even_with_a_token(
    web: Web, headers: dict[str, str]
) -> None:
    await web.push("job-000001")
    token = await web.token()
    data = {"action": "delete", "csrf_token": token}
    response = await web.client.post("/queues/default", data=data, headers=headers)
    assert response.status_code == 403
    assert (await web.stats())["total_enqueued"] == 1


SAME_SITE = [
    {"Origin": "http://werk.test"},
    {"Origin": "https://proxy.example", "X-Forwarded-Host": "proxy.example"},
    {"Origin": "https://proxy.example", "Sec-Fetch-Site": "same-origin"},
    {"Sec-Fetch-Site": "same-origin"},
    {"Referer": "http://werk.test/queues"},
    {},
]


@SQLITE_ONLY
@pytest.mark.parametrize("headers", SAME_SITE)
async def test_same_site_action_with_a_token_is_done(web: Web, headers: dict[str, str]) -> None:
    await web.push("job-000001")
    token = await web.token()
    data = {"action": "pause", "csrf_token": token}
    response = await web.client.post("/queues/default", data=data, headers=headers)
    assert response.status_code == 303


@SQLITE_ONLY
async def test_the_token_cookie_is_set_once_and_http_only(web: Web) -> None:
    first = await web.client.get("/")
    cookie = first.headers["set-cookie"]
    assert cookie.startswith("werk_csrf=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    again = await web.client.get("/queues")
    assert "set-cookie" not in again.headers


@SQLITE_ONLY
async def test_script_name_prefixes_links_and_redirects(web: Web) -> None:
    # Given a proxy that passes /werk/... unchanged and says so in X-Script-Name
    headers = {"X-Script-Name": "/werk"}
    await web.push("job-000001")
    page = await web.client.get("/werk/queues", headers=headers)
    assert page.status_code == 200
    assert 'href="/werk/queues/default"' in page.text
    assert 'href="/werk/static/werk.css?v=' in page.text
    assert "Path=/werk" in page.headers["set-cookie"]
    # And a proxy that strips the prefix
    assert (await web.client.get("/queues", headers=headers)).status_code == 200
    token = await web.token()
    data = {"action": "pause", "csrf_token": token}
    response = await web.client.post("/werk/queues/default", data=data, headers=headers)
    assert response.headers["location"] == "/werk/queues?done=pause"


@SQLITE_ONLY
async def test_a_bad_script_name_is_ignored(web: Web) -> None:
    headers = {"X-Script-Name": '"><script>alert(1)</script>'}
    page = await web.client.get("/queues", headers=headers)
    assert page.status_code == 200 and "<script>alert" not in page.text


@SQLITE_ONLY
async def test_actions_are_post_only(web: Web) -> None:
    response = await web.client.get("/busy", params={"wid": "all", "signal": "terminate"})
    assert response.status_code == 200
    assert (await web.client.delete("/retries")).status_code == 405


def test_basic_auth_parser() -> None:
    def header(value: bytes) -> dict[bytes, bytes]:
        return {b"authorization": value}

    good = b"Basic " + base64.b64encode(b"user:pw:with:colons")
    assert authorized(header(good), "pw:with:colons")
    assert not authorized(header(b"Basic " + base64.b64encode(b"nocolon")), "nocolon")
    assert not authorized(header(b"Bearer x"), "x")
    assert not authorized({}, "x")
