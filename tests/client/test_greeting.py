"""A client or worker pointed at a port that is not a work port: the web UI's HTTP port is
named at once, a silent port gets a hint, and neither is mistaken for a lost server."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import SQLITE_ONLY
from tests.helpers import ServerProcess
from werk.client import AsyncClient, Client, NoGreetingError, NotWorkPortError, Worker
from werk.client.connection import ServerUnreachableError


@pytest.fixture
def web_server(werk_server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return werk_server_factory(web=True)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@SQLITE_ONLY
def test_the_web_ui_port_is_named_at_once(web_server: ServerProcess) -> None:
    url = f"tcp://127.0.0.1:{web_server.web_port}"
    began = time.monotonic()
    with pytest.raises(NotWorkPortError) as refused, Client(url) as client:
        client.info()
    # one probe after the greeting wait, no retries (the full wait would be 5 x 10 s)
    assert time.monotonic() - began < 9
    message = str(refused.value)
    assert f"{url} is an HTTP server (it answered 'HTTP/1.1 400" in message
    assert "not a Werk/Faktory work port (the web UI is usually on 7420" in message


@SQLITE_ONLY
async def test_the_async_client_and_the_worker_stop_on_the_web_ui_port(
    web_server: ServerProcess,
) -> None:
    url = f"tcp://127.0.0.1:{web_server.web_port}"
    with pytest.raises(NotWorkPortError):
        async with AsyncClient(url) as client:
            await client.info()
    worker = Worker(url, concurrency=1)
    with pytest.raises(NotWorkPortError):
        await asyncio.wait_for(worker.run_async(), 30)


def test_a_silent_port_gets_a_hint(silent_port: int) -> None:
    url = f"tcp://127.0.0.1:{silent_port}"
    with pytest.raises(ServerUnreachableError) as unreachable:
        with Client(url, timeout=0.5, connect_retries=0) as client:
            client.info()
    assert isinstance(unreachable.value.__cause__, NoGreetingError)
    assert f"no greeting from {url} within 0.5s: is it a Werk/Faktory work port?" in str(
        unreachable.value
    )
