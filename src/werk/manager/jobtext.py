"""Bounded views of job bodies for the web UI: work in proportion to what a page shows.

A job may be megabytes (a million args, a 16 MiB string). Pages show a cut preview, so
they must never decode, serialise or escape the whole job:

- :func:`cut_json` writes the JSON text of a value as :func:`json.dumps` would (same
  separators, ``ensure_ascii=False``) but walks the value lazily and stops after ``limit``
  characters, so its cost follows ``limit``, not the value's size.
- :func:`skim` decodes a large stored body without reading all of it: its small fields,
  and of ``args`` only the first :data:`PREVIEW_BYTES` bytes of elements.

Werk's own web UI rules; nothing here is part of the Faktory protocol.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, Final

from werk.errors import InvalidJSONError
from werk.protocol import jsonwire

FIELD_BYTES: Final = 16 * 1024
"""A top-level field of a large body longer than this (bytes of JSON) is not decoded."""
PREVIEW_BYTES: Final = 8 * 1024
"""How many bytes of a large body's ``args`` elements are decoded for its preview."""
TAIL_BYTES: Final = 64 * 1024
"""How far from its end a large body is searched for the fields after its large one."""
MAX_TAILS: Final = 64
"""How many possible starts of those fields are tried (each a decode of the tail)."""

_encode_str = json.encoder.encode_basestring
_WS: Final = re.compile(rb"[ \t\r\n]*+")
_STRING: Final = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.S)
_SCALAR: Final = re.compile(rb"[^,\]}\s]++")
_INSIDE: Final = re.compile(rb'(?:[^"\[\]{}]++|"(?:[^"\\]++|\\.)*+")*+', re.S)
"""Everything up to the next bracket outside a string: one pass in C."""


def cut_json(value: Any, limit: int, indent: int | None = None) -> tuple[str, bool]:
    """Return the first ``limit`` characters of ``json.dumps(value, indent=indent,
    ensure_ascii=False)`` and whether the text was longer (then it was cut).

    ``value`` is decoded JSON (dicts with string keys, lists, strings, numbers, booleans,
    ``None``); anything else is written as ``str()`` of it, never raising. The cost is
    proportional to ``limit``: a long string is encoded only as far as needed.
    """
    parts: list[str] = []
    size = 0
    for chunk in _chunks(value, limit, indent, 0):
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            return "".join(parts)[:limit], True
    return "".join(parts), False


def _chunks(value: Any, limit: int, indent: int | None, level: int) -> Iterator[str]:
    if isinstance(value, str):
        if len(value) > limit:  # an escaped character is never shorter than itself
            yield _encode_str(value[: limit + 1])[:-1]
        else:
            yield _encode_str(value)
    elif value is None or isinstance(value, bool | int | float):
        yield json.dumps(value)
    elif isinstance(value, list | dict):
        yield from _container(value, limit, indent, level)
    else:
        yield _encode_str(str(value))


def _container(
    value: list[Any] | dict[Any, Any], limit: int, indent: int | None, level: int
) -> Iterator[str]:
    opening, closing = ("[", "]") if isinstance(value, list) else ("{", "}")
    if not value:
        yield opening + closing
        return
    if indent is None:
        first, between, last = opening, ", ", closing
    else:
        pad = "\n" + " " * (indent * (level + 1))
        first, between, last = opening + pad, "," + pad, "\n" + " " * (indent * level) + closing
    yield first
    items = value if isinstance(value, list) else value.items()
    for n, item in enumerate(items):
        if n:
            yield between
        if isinstance(value, dict):
            key, item = item
            yield _encode_str(key if isinstance(key, str) else json.dumps(key)) + ": "
        yield from _chunks(item, limit, indent, level + 1)
    yield last


def skim(body: bytes) -> dict[str, Any]:
    """Decode a large stored job body, leaving out what a preview does not need.

    Returns the job's fields with ``args`` cut to its first elements (about
    :data:`PREVIEW_BYTES` bytes of them); ``skimmed`` names the first field longer than
    :data:`FIELD_BYTES` bytes, where the reading from the front stops. The fields after it
    are then read from the back: the shortest end of the body, within
    :data:`TAIL_BYTES`, that is the rest of a JSON object (a ``,"`` outside strings cannot
    start one from inside a value, which would leave its brackets unclosed); fields between
    the two are left out. Python work is bounded by these sizes; the passes over the body
    are ``rfind`` calls in C.

    Raises:
        ValueError: the body is not a JSON object (the caller shows it as broken).
        InvalidJSONError: a field that is decoded is not JSON.
    """
    job: dict[str, Any] = {}
    pos = _skip_ws(body, 0)
    if body[pos : pos + 1] != b"{":
        raise ValueError("not a JSON object")
    pos = _skip_ws(body, pos + 1)
    while body[pos : pos + 1] != b"}":
        end = _value_end(body, pos, pos + FIELD_BYTES)
        if end < 0:
            raise ValueError(f"a key longer than {FIELD_BYTES} bytes at byte {pos}")
        key = str(jsonwire.loads(body[pos:end]))
        pos = _skip_ws(body, end)
        if body[pos : pos + 1] != b":":
            raise ValueError(f"expected ':' at byte {pos}")
        start = _skip_ws(body, pos + 1)
        end = _value_end(body, start, start + FIELD_BYTES)
        if end < 0:  # a large value: its start, then the fields after it
            if key == "args" and body[start : start + 1] == b"[":
                job["args"] = _first_elements(body, start)
            return {**job, **_tail(body, start), "skimmed": [key]}
        job[key] = jsonwire.loads(body[start:end])
        pos = _skip_ws(body, end)
        if body[pos : pos + 1] == b",":
            pos = _skip_ws(body, pos + 1)
        elif body[pos : pos + 1] != b"}":
            raise ValueError(f"expected ',' or '}}' at byte {pos}")
    return {**job, "skimmed": []}


def _tail(body: bytes, start: int) -> dict[str, Any]:
    # The longest valid tail wins: a shorter one would leave fields out.
    found: dict[str, Any] = {}
    low = max(start, len(body) - TAIL_BYTES)
    pos = len(body)
    for _ in range(MAX_TAILS):
        pos = body.rfind(b',"', low, pos)
        if pos < 0:
            break
        try:
            tail = jsonwire.loads(b"{" + body[pos + 1 :])
        except (ValueError, InvalidJSONError):
            continue
        if isinstance(tail, dict):
            found = tail
    return found


def _first_elements(body: bytes, start: int) -> list[Any]:
    # Elements up to PREVIEW_BYTES; a first one that crosses it is cut as text.
    elements: list[Any] = []
    limit = start + PREVIEW_BYTES
    pos = _skip_ws(body, start + 1)
    while body[pos : pos + 1] not in (b"]", b""):
        stop = _value_end(body, pos, limit)
        if stop < 0:
            if not elements:  # one huge element: show the start of its JSON text
                elements.append(body[pos:limit].decode(errors="replace"))
            return elements
        elements.append(jsonwire.loads(body[pos:stop]))
        pos = _skip_ws(body, stop)
        if body[pos : pos + 1] == b",":
            pos = _skip_ws(body, pos + 1)
    return elements


def _unterminated(pos: int) -> int:
    raise ValueError(f"unterminated value at byte {pos}")


def _skip_ws(body: bytes, pos: int) -> int:
    found = _WS.match(body, pos)
    return found.end() if found else pos


def _value_end(body: bytes, pos: int, limit: int) -> int:
    """Return where the JSON value starting at ``pos`` ends (one past its last byte), or
    -1 when it does not end by ``limit``; reads no further than ``limit``."""
    lead = body[pos : pos + 1]
    if lead == b'"':
        found = _STRING.match(body, pos, limit)
        if found is None:
            return -1 if limit < len(body) else _unterminated(pos)
        return found.end()
    if lead not in (b"[", b"{"):
        found = _SCALAR.match(body, pos, limit)
        if found is None:
            raise ValueError(f"expected a value at byte {pos}")
        return found.end() if found.end() < limit or limit >= len(body) else -1
    depth = 0
    while True:
        inside = _INSIDE.match(body, pos, limit)
        pos = inside.end() if inside else pos
        bracket = body[pos : pos + 1] if pos < limit else b""
        if bracket not in (b"[", b"]", b"{", b"}"):  # the end, or a string not closed by it
            return -1 if limit < len(body) else _unterminated(pos)
        depth += 1 if bracket in (b"[", b"{") else -1
        pos += 1
        if depth == 0:
            return pos
