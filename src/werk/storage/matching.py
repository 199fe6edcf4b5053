"""Helpers every storage backend shares: day keys, set filters, globs and key ranges.

Backends never import each other (tests/test_layout.py); what two of them need lives here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

from werk.storage.base import SetFilter


def utc_day(now: float) -> str:
    """Return the UTC day of a Unix time as ``YYYY-MM-DD``."""
    return _day(int(now // 86400))


@lru_cache(maxsize=16)
def _day(number: int) -> str:
    # Formatting a datetime per ACK showed in the profile; a day has one name.
    return datetime.fromtimestamp(number * 86400, UTC).strftime("%Y-%m-%d")


def is_empty(where: SetFilter | None) -> bool:
    """Return whether a filter lets everything through."""
    return where is None or (where.queue is None and where.jobtype is None and where.text is None)


def prefix_bound(prefix: str) -> str | None:
    """Return the smallest string above every string starting with ``prefix``.

    SQLite TEXT and PostgreSQL ``COLLATE "C"`` compare UTF-8 bytes, which order like code
    points, so bumping the
    last code point (skipping surrogates, dropping a maximal one) gives an exact bound.
    ``None``: no bound (an empty prefix, or only maximal code points).
    """
    chars = list(prefix)
    while chars:
        last = ord(chars.pop()) + 1
        if last == 0xD800:
            last = 0xE000
        if last <= 0x10FFFF:
            return "".join(chars) + chr(last)
    return None


class Glob:
    """A compiled glob: :meth:`match` tells whether it matches a whole byte string.

    The pattern is cut at its ``*``s into segments whose every token matches exactly one
    byte (a literal, ``?`` or a ``[...]`` class). The first segment must match at the start
    and the last at the end; each one between is found leftmost after the one before, which
    is a match whenever any match exists. So a match costs at most one search per segment,
    never the backtracking of ``.*.*...``: ``********x`` took 337 s against a 90-byte job,
    stalling the whole server (every backend matches MUTATE's ``regexp`` with this).
    """

    __slots__ = ("_segments", "_starred")

    def __init__(self, segments: list[tuple[re.Pattern[bytes], int]], starred: bool) -> None:
        self._segments = segments  # (regular expression, bytes it matches)
        self._starred = starred

    def match(self, subject: bytes) -> bool:
        """Return whether the glob matches all of ``subject``."""
        (first, width), *rest = self._segments
        if not self._starred:
            return first.fullmatch(subject) is not None
        if first.match(subject) is None:
            return False
        pos = width
        *middle, (last, width) = rest
        for segment, _ in middle:
            found = segment.search(subject, pos)
            if found is None:
                return False
            pos = found.end()
        start = len(subject) - width
        return start >= pos and last.fullmatch(subject, start) is not None


@lru_cache(maxsize=64)
def glob(pattern: str) -> Glob:
    """Compile a glob with Redis MATCH meaning (``*``, ``?``, ``[...]``, ``[^...]``,
    ranges, ``\\`` escapes), matched byte-wise over the whole subject."""
    segments: list[list[bytes]] = [[]]
    for token in glob_tokens(pattern):
        if token is None:
            if segments[-1] or len(segments) == 1:
                segments.append([])  # ``**`` is ``*``
        else:
            segments[-1].append(token)
    compiled = [(re.compile(b"".join(tokens), re.DOTALL), len(tokens)) for tokens in segments]
    return Glob(compiled, starred=len(segments) > 1)


def glob_tokens(pattern: str) -> list[bytes | None]:
    """Translate a glob into regular expressions of one byte each, ``None`` for a ``*``."""
    pat = pattern.encode()
    out: list[bytes | None] = []
    i = 0
    while i < len(pat):
        c = pat[i : i + 1]
        i += 1
        if c == b"*":
            out.append(None)
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
    return out


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
