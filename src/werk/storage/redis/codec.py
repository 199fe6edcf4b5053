"""Packing of entries and reservations for the Redis store, its glob matcher, error wrapping.

The packed layouts are documented in :mod:`werk.storage.redis.keys`; the Lua scripts in
:mod:`werk.storage.redis.scripts` read the same header, so change both together.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from redis.exceptions import RedisError

from werk.errors import StorageError
from werk.storage.base import Entry, Reservation, SetFilter
from werk.storage.stall import StallWatch

WATCH = StallWatch("redis")
"""This process's Redis calls in flight: a frozen Redis is logged (:mod:`werk.storage.stall`)."""

_P = ParamSpec("_P")
_R = TypeVar("_R")


def wrap_errors(fn: Callable[_P, Awaitable[_R]]) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """Turn redis-py (and socket) errors raised by ``fn`` into :class:`StorageError`."""

    @functools.wraps(fn)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        watched = WATCH.begin()
        ok = False
        try:
            result = await fn(*args, **kwargs)
            ok = True
            return result
        except (RedisError, OSError) as exc:
            raise StorageError(f"redis: {exc}") from exc
        finally:
            if watched:
                WATCH.end(ok)

    return wrapper


def fmt_float(value: float) -> str:
    """Return ``value`` as text that parses back to the very same double."""
    return repr(float(value))


def pack_entry(entry: Entry, enqueued_at: float | None = None) -> bytes:
    """Pack an entry (with its ``enqueued_at`` when it sits in a queue)."""
    queue = entry.queue.encode()
    jobtype = entry.jobtype.encode()
    enq = "" if enqueued_at is None else fmt_float(enqueued_at)
    head = f"{entry.priority}|{entry.reserve_for}|{enq}|{len(queue)}|{len(jobtype)}|"
    return b"".join((head.encode(), queue, jobtype, entry.body))


def unpack_entry(jid: str, data: bytes) -> tuple[Entry, float | None]:
    """Unpack a packed entry; return it with its ``enqueued_at`` (``None`` if absent).

    ``jid`` may be a queue member ``jid\0seq`` (a second copy of a jid in one queue).
    """
    jid = jid.partition("\0")[0]
    try:
        pri, rf, enq, qlen, tlen, rest = data.split(b"|", 5)
        qend = int(qlen)
        tend = qend + int(tlen)
        entry = Entry(
            jid=jid,
            queue=rest[:qend].decode(),
            jobtype=rest[qend:tend].decode(),
            priority=int(pri),
            reserve_for=int(rf),
            body=rest[tend:],
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise StorageError(f"redis: damaged entry for jid {jid!r}") from exc
    return entry, (float(enq) if enq else None)


def unpack_reservation(jid: str, data: bytes, expires_at: float) -> Reservation:
    """Unpack a packed reservation held until ``expires_at``."""
    try:
        reserved, wlen, rest = data.split(b"|", 2)
        wend = int(wlen)
        wid = rest[:wend].decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise StorageError(f"redis: damaged reservation for jid {jid!r}") from exc
    entry, enqueued_at = unpack_entry(jid, rest[wend:])
    return Reservation(
        entry=entry,
        enqueued_at=enqueued_at or 0.0,
        reserved_at=float(reserved),
        expires_at=expires_at,
        wid=wid,
    )


def matches(entry: Entry, where: SetFilter) -> bool:
    """Return whether an entry passes a :class:`SetFilter`."""
    if where.queue is not None and entry.queue != where.queue:
        return False
    if where.jobtype is not None and entry.jobtype != where.jobtype:
        return False
    return where.text is None or where.text.encode() in entry.body
