"""The Python wrapper of LIMIT: ``limiter`` and ``async_limiter`` over a real server."""

from __future__ import annotations

import json

import pytest

from tests.helpers import Peer, ServerProcess
from werk.client import AsyncClient, Client
from werk.client.limits import RATE_LIMITED_ERRTYPE, RateLimited, async_limiter, limiter
from werk.errors import LimitedError


def held(server: ServerProcess, name: str) -> int:
    peer = Peer(server.host, server.port)
    peer.hello()
    reply = peer.call(f"LIMIT STATUS {name}")
    assert isinstance(reply, bytes)
    count: int = json.loads(reply)["held"]
    return count


def test_limiter_holds_and_releases(werk_server: ServerProcess) -> None:
    with Client(werk_server.url) as client:
        with limiter(client, "pdf", limit=1, period=30) as holder:
            assert len(holder) == 16
            assert held(werk_server, "pdf") == 1
            with pytest.raises(RateLimited) as refused:
                with limiter(client, "pdf", limit=1, period=30):
                    pytest.fail("a second unit was granted")
            assert 0 < refused.value.retry_after <= 30
            assert isinstance(refused.value, LimitedError)
            assert refused.value.errtype == RATE_LIMITED_ERRTYPE
            assert str(refused.value).startswith("retry after ")
        assert held(werk_server, "pdf") == 0
        # released even when the block raises
        with pytest.raises(ZeroDivisionError):
            with limiter(client, "pdf", limit=1, period=30):
                1 / 0  # noqa: B018
        assert held(werk_server, "pdf") == 0


def test_rate_limiter_waits(werk_server: ServerProcess) -> None:
    with Client(werk_server.url) as client:
        with limiter(client, "api", kind="bucket", limit=1, period=0.5):
            pass
        with limiter(client, "api", kind="bucket", limit=1, period=0.5, wait=2):
            pass
        with pytest.raises(RateLimited):
            with limiter(client, "api", kind="bucket", limit=1, period=60):
                pass


async def test_async_limiter(werk_server: ServerProcess) -> None:
    async with AsyncClient(werk_server.url) as client:
        async with async_limiter(client, "mail", limit=2, period=30, holder="job-1") as who:
            assert who == "job-1"
            async with async_limiter(client, "mail", limit=2, period=30):
                assert held(werk_server, "mail") == 2
                with pytest.raises(RateLimited):
                    async with async_limiter(client, "mail", limit=2, period=30):
                        pass
        assert held(werk_server, "mail") == 0
