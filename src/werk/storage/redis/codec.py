"""Packing of entries and reservations for the Redis store, its glob matcher, error wrapping.

The packed layouts are documented in :mod:`werk.storage.redis.keys`; the Lua scripts in
:mod:`werk.storage.redis.scripts` read the same header, so change both together.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, ParamSpec, TypeVar

from redis.exceptions import RedisError

from werk.errors import StorageError
from werk.storage.base import Entry, Reservation, SetFilter

_P = ParamSpec("_P")
_R = TypeVar("_R")


def wrap_errors(fn: Callable[_P, Awaitable[_R]]) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """Turn redis-py (and socket) errors raised by ``fn`` into :class:`StorageError`."""

    @functools.wraps(fn)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await fn(*args, **kwargs)
        except (RedisError, OSError) as exc:
            raise StorageError(f"redis: {exc}") from exc

    return wrapper


def utc_day(now: float) -> str:
    """Return the UTC day of a Unix time as ``YYYY-MM-DD``."""
    return _day(int(now // 86400))


@lru_cache(maxsize=16)
def _day(number: int) -> str:
    # Formatting a datetime per ACK showed in the profile; a day has one name.
    return datetime.fromtimestamp(number * 86400, UTC).strftime("%Y-%m-%d")


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
    """Unpack a packed entry; return it with its ``enqueued_at`` (``None`` if absent)."""
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


def is_empty(where: SetFilter | None) -> bool:
    """Return whether a filter lets everything through."""
    return where is None or (where.queue is None and where.jobtype is None and where.text is None)


@lru_cache(maxsize=64)
def glob(pattern: str) -> re.Pattern[bytes]:
    """Compile a glob with Redis MATCH meaning (``*``, ``?``, ``[...]``, ``[^...]``,
    ranges, ``\\`` escapes), matched byte-wise over the whole subject."""
    pat = pattern.encode()
    out: list[bytes] = []
    i = 0
    while i < len(pat):
        c = pat[i : i + 1]
        i += 1
        if c == b"*":
            out.append(b".*")
        elif c == b"?":
            out.append(b".")
        elif c == b"\\" and i < len(pat):
            out.append(re.escape(pat[i : i + 1]))
            i += 1
        elif c == b"[":
            cls, i = _char_class(pat, i)
            out.append(cls)
        else:
            out.append(re.escape(c))
    return re.compile(b"".join(out) + rb"\Z", re.DOTALL)


def _char_class(pat: bytes, i: int) -> tuple[bytes, int]:
    """Translate a ``[...]`` class starting after ``[``; return it and the next index."""
    negate = pat[i : i + 1] == b"^"
    if negate:
        i += 1
    parts: list[bytes] = []
    while i < len(pat) and pat[i : i + 1] != b"]":
        c = pat[i : i + 1]
        if c == b"\\" and i + 1 < len(pat):
            parts.append(re.escape(pat[i + 1 : i + 2]))
            i += 2
        elif pat[i + 1 : i + 2] == b"-" and i + 2 < len(pat) and pat[i + 2 : i + 3] != b"]":
            lo, hi = sorted((pat[i], pat[i + 2]))
            parts.append(re.escape(bytes([lo])) + b"-" + re.escape(bytes([hi])))
            i += 3
        else:
            parts.append(re.escape(c))
            i += 1
    i += 1  # past "]" (Redis treats a missing "]" as the end of the pattern)
    if not parts:
        return (b"[^\\x00-\\xff]" if not negate else b"[\\x00-\\xff]"), i
    return b"[" + (b"^" if negate else b"") + b"".join(parts) + b"]", i
