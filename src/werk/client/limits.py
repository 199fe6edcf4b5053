"""Rate limiters for job code: context managers over Werk's ``LIMIT`` verb.

``with limiter(client, "stripe", kind="bucket", limit=10, period=1): ...`` takes a unit
(waiting up to ``wait`` seconds on the server) and, for ``concurrent`` limiters, gives it
back on exit. When no unit came it raises :class:`RateLimited`; a worker reports that as
``FAIL`` with errtype ``werk.RateLimited`` and the server reschedules the job after the
hinted delay without using one of its retries (docs/protocol.md, ``LIMIT``).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Final, Literal

from werk.client.async_client import AsyncClient
from werk.client.client import Client
from werk.client.proto import Call, expect_ok
from werk.client.reports import RATE_LIMITED_ERRTYPE
from werk.client.runner import current_job
from werk.errors import LimitedError
from werk.protocol import commands as verbs
from werk.protocol.commands import compact_json, encode_command

Kind = Literal["concurrent", "bucket", "window", "leaky"]
READ_MARGIN: Final = 1.0
"""Seconds kept between the server-side ``wait`` and the client's read timeout."""


class RateLimited(LimitedError):
    """No unit of the limiter was free within ``wait``; ``retry_after`` says how long
    until one is expected. Report it as FAIL with errtype :data:`RATE_LIMITED_ERRTYPE`
    and ``str(exc)`` (``retry after <seconds>``) as the message."""

    errtype = RATE_LIMITED_ERRTYPE


def _holder(holder: str | None) -> str:
    if holder:
        return holder
    job = current_job()
    if job and job.get("jid"):
        return str(job["jid"])
    return secrets.token_hex(8)


def acquire_call(
    name: str, kind: Kind, limit: int, period: float | None, holder: str, wait: float
) -> Call[None]:
    """Build ``LIMIT ACQUIRE {...}`` → ``None``; a ``-LIMITED`` reply raises
    :class:`RateLimited`."""
    payload: dict[str, Any] = {"name": name, "kind": kind, "limit": limit, "holder": holder}
    if period is not None:
        payload["period"] = period
    if wait > 0:
        payload["wait"] = wait

    def parse(reply: Any) -> None:
        try:
            expect_ok(reply)
        except LimitedError as exc:
            raise RateLimited(exc.message) from None

    return Call(encode_command(verbs.LIMIT, "ACQUIRE " + compact_json(payload)), parse)


def release_call(name: str, holder: str) -> Call[None]:
    """Build ``LIMIT RELEASE {"name","holder"}`` → ``None``."""
    payload = compact_json({"name": name, "holder": holder})
    return Call(encode_command(verbs.LIMIT, "RELEASE " + payload), expect_ok)


def _wait(wait: float, timeout: float) -> float:
    # The server holds the reply up to ``wait``: keep it under the client's read timeout.
    return max(0.0, min(wait, timeout - READ_MARGIN))


@contextmanager
def limiter(
    client: Client,
    name: str,
    *,
    kind: Kind = "concurrent",
    limit: int,
    period: float | None = None,
    holder: str | None = None,
    wait: float = 0.0,
) -> Iterator[str]:
    """Hold one unit of the limiter ``name`` for the ``with`` block; yield the holder.

    Args:
        client: the client whose connections carry the commands.
        name: the limiter's name, shared by every worker and server.
        kind: ``concurrent``, ``bucket``, ``window`` or ``leaky``.
        limit: units per ``period`` (or holders at once, for ``concurrent``).
        period: seconds (for ``concurrent``: the hold timeout, server default 60).
        holder: who holds the unit; by default the running job's jid, else random.
        wait: seconds the server may wait for a unit (kept under the read timeout).

    Raises:
        RateLimited: no unit within ``wait``.
    """
    token = _holder(holder)
    client.call(acquire_call(name, kind, limit, period, token, _wait(wait, client.timeout)))
    try:
        yield token
    finally:
        if kind == "concurrent":
            client.call(release_call(name, token))


@asynccontextmanager
async def async_limiter(
    client: AsyncClient,
    name: str,
    *,
    kind: Kind = "concurrent",
    limit: int,
    period: float | None = None,
    holder: str | None = None,
    wait: float = 0.0,
) -> AsyncIterator[str]:
    """The asyncio form of :func:`limiter`, over an :class:`AsyncClient`.

    Raises:
        RateLimited: no unit within ``wait``.
    """
    token = _holder(holder)
    call = acquire_call(name, kind, limit, period, token, _wait(wait, client.timeout))
    await client.call(call)
    try:
        yield token
    finally:
        if kind == "concurrent":
            await client.call(release_call(name, token))
