"""Helpers for the Enterprise feature tests: jobs, a Werk client per server, raw replies."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.helpers import Peer, ServerProcess
from werk.client import Client
from werk.job import format_time
from werk.protocol.resp import Simple


def jid() -> str:
    """Return a fresh jid."""
    return uuid.uuid4().hex[:16]


def job(
    jobtype: str = "Work", queue: str = "work", args: Any = (), **custom: Any
) -> dict[str, Any]:
    """Return a job dict with a fresh jid and the given ``custom`` fields."""
    payload: dict[str, Any] = {"jid": jid(), "jobtype": jobtype, "queue": queue, "args": list(args)}
    if custom:
        payload["custom"] = custom
    return payload


def rfc3339_in(seconds: float) -> str:
    """Return the RFC 3339 time ``seconds`` from now."""
    return format_time(time.time() + seconds)


@contextmanager
def client_of(server: ServerProcess, timeout: float = 10.0) -> Iterator[Client]:
    """A Werk client connected to ``server``, closed afterwards."""
    with Client(server.url, wid=uuid.uuid4().hex, timeout=timeout) as client:
        yield client


def peer_of(server: ServerProcess) -> Peer:
    """A raw peer that said HELLO to ``server``."""
    peer = Peer(server.host, server.port)
    assert peer.hello() == Simple("OK")
    return peer


def bulk_json(reply: Any) -> Any:
    """Decode a bulk JSON reply, failing on anything else."""
    assert isinstance(reply, bytes), reply
    return json.loads(reply)


def take(client: Client, queue: str) -> dict[str, Any]:
    """Fetch the next job of ``queue``, failing if there is none."""
    fetched = client.fetch(queue)
    assert fetched is not None, f"no job in {queue}"
    return fetched


def requeue_retry(client: Client, job_id: str) -> None:
    """Move a job waiting in the retry set back into its queue at once."""
    client.mutate("requeue", "retries", {"jids": [job_id]})
