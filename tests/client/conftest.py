"""Fixtures for the client tests: clients and a worker running on the test's event loop."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ServerProcess
from werk.client import Client, Worker


@pytest.fixture
def client(werk_server: ServerProcess) -> Iterator[Client]:
    """A blocking client of ``werk_server``."""
    with Client(werk_server.url) as c:
        yield c


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, step: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout}s")


async def async_wait_until(predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Like :func:`wait_until`, without blocking the event loop."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture
async def start_worker() -> AsyncIterator[Callable[[Worker], asyncio.Task[None]]]:
    """Start workers as tasks on the test's loop; stop and await them at the end."""
    started: list[tuple[Worker, asyncio.Task[None]]] = []

    def start(worker: Worker) -> asyncio.Task[None]:
        task = asyncio.create_task(worker.run_async())
        started.append((worker, task))
        return task

    yield start
    for worker, task in started:
        worker.stop()
        await asyncio.wait_for(task, 30)


def retries_size(client: Client) -> int:
    """The number of jobs in the Retries set, per INFO."""
    return int(client.info()["faktory"]["tasks"]["Retries"]["size"])


def start_cli_worker(
    tmp_path: Path, server: ServerProcess, source: str, target: str, *flags: str, **popen: Any
) -> subprocess.Popen[Any]:
    """Start ``werk worker TARGET --url <server> FLAGS`` in ``tmp_path``, where the target's
    module is written from ``source`` first; ``popen``: :class:`subprocess.Popen`'s
    keyword arguments (the streams)."""
    (tmp_path / f"{target.partition(':')[0]}.py").write_text(source)
    args = [sys.executable, "-m", "werk", "worker", target, "--url", server.url, *flags]
    return subprocess.Popen(args, cwd=tmp_path, **popen)
