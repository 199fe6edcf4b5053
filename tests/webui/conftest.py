"""Fixtures for the web UI tests: an in-process server, an HTTP client on its app, job makers.

``web`` is a running :class:`~werk.server.server.Server` (no web port of its own) with an
``httpx.AsyncClient`` speaking to its ASGI app in the same event loop, so the tests can push
and fail jobs through the manager and look at the pages in one place.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from werk.manager.retry import FailureReport
from werk.server.config import ServerConfig
from werk.server.server import Server
from werk.webui.app import create_app

TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@dataclass
class Web:
    """An in-process server and a browser-like client of its web UI."""

    server: Server
    client: httpx.AsyncClient

    async def push(self, jid: str, **fields: Any) -> None:
        """Push one job through the manager."""
        job = {"jid": jid, "jobtype": "Report", "args": [1, "two"], **fields}
        await self.server.manager.push(job)

    async def fail(self, jid: str, queue: str = "default", **fields: Any) -> None:
        """Push a job, fetch it and FAIL it once (``retry=-1`` sends it to the dead set)."""
        await self.push(jid, queue=queue, **fields)
        fetched = await self.server.manager.fetch([queue], "w1", timeout=0)
        assert fetched is not None and json.loads(fetched)["jid"] == jid, "queue not empty"
        report = FailureReport("RuntimeError", f"boom {jid}", ["line 1", "line 2"])
        await self.server.manager.fail(jid, report)

    async def token(self, path: str = "/") -> str:
        """GET a page and return the CSRF token of its forms."""
        response = await self.client.get(path)
        match = TOKEN.search(response.text)
        assert match, response.text[:500]
        return match.group(1)

    async def post(self, path: str, data: dict[str, Any]) -> httpx.Response:
        """POST an action form with a valid token, as the page's form would."""
        token = await self.token()
        return await self.client.post(path, data={"csrf_token": token, **data})

    async def stats(self) -> dict[str, Any]:
        """Return the ``/stats`` document's ``faktory`` section."""
        response = await self.client.get("/stats")
        assert response.status_code == 200
        faktory: dict[str, Any] = response.json()["faktory"]
        return faktory


async def start_server(tmp_path: Path, **config: Any) -> Server:
    """Start an in-process server on a free port with a fresh data directory."""
    server = Server(
        ServerConfig(binding=("127.0.0.1", 0), web_binding=None, data_dir=tmp_path, **config)
    )
    await server.start()
    return server


def client_of(server: Server, **kwargs: Any) -> httpx.AsyncClient:
    """Return an HTTP client for a server's web UI app (not following redirects)."""
    transport = httpx.ASGITransport(app=create_app(server))
    return httpx.AsyncClient(transport=transport, base_url="http://werk.test", **kwargs)


@pytest.fixture
async def web(tmp_path: Path, backend: str | None) -> AsyncIterator[Web]:
    """A running server without a password (on each backend of the ``backend`` fixture)
    and a web client."""
    server = await start_server(tmp_path / "data", storage_url=backend)
    async with client_of(server) as client:
        yield Web(server, client)
    await server.stop()
