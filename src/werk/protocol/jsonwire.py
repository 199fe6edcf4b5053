"""The one JSON codec of every input and every stored or sent document.

Every JSON that enters Werk (a command argument, a HELLO, a web form field) is decoded by
:func:`loads`, and every document Werk stores or hands out is encoded by :func:`dumps`, so
the codec can be swapped (orjson, msgspec) here alone. The contract, pinned by
tests/protocol/test_jsonwire.py, whatever the codec:

- :func:`loads` refuses a document nested deeper than ``max_depth`` levels (default
  :data:`MAX_DEPTH`; a scalar is 0 levels, ``[]`` and ``{}`` are 1) with
  :class:`~werk.errors.JSONDepthError`, before the decoder can exhaust the stack.
- :func:`loads` refuses the non-JSON constants ``NaN``, ``Infinity`` and ``-Infinity``.
- Invalid UTF-8 bytes and lone surrogate escapes (``"\\ud800"``) decode to U+FFFD, as Go's
  decoder (and so Faktory) does; no decoded string ever holds a surrogate.
- :func:`dumps` writes compact UTF-8 JSON that any strict parser reads: it refuses NaN and
  infinities (``1e400`` decodes to one) with :class:`~werk.errors.InvalidJSONError`, and
  writes a lone surrogate that reached it some other way as U+FFFD instead of failing
  (or refuses it too, when asked: a worker refuses a job's result that holds one).
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from werk.errors import InvalidJSONError, JSONDepthError

MAX_DEPTH: Final = 100
"""The deepest nesting accepted anywhere JSON enters (a job object itself is level 1)."""

_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_DROP: Final = bytes(range(256)).translate(None, b'"[]{}')
"""Every byte but quotes and brackets: what the depth check drops."""
_ONE_KIND: Final = bytes.maketrans(b"{}", b"[]")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER: Final = json.JSONDecoder(parse_constant=_refuse_constant)
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def depth_error(max_depth: int = MAX_DEPTH) -> JSONDepthError:
    """The error for a document nested deeper than ``max_depth`` (its text names it)."""
    return JSONDepthError(f"JSON nested deeper than {max_depth} levels (the limit)")


def _check_depth(data: bytes, max_depth: int) -> None:
    # Only brackets outside strings count. Escaped backslashes and quotes go first, then
    # everything but quotes and brackets; strings are then every other piece between
    # quotes. Each step is one pass in C, so a large PUSHB stays cheap.
    marks = data.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _DROP)
    brackets = b"".join(marks.split(b'"')[::2]).translate(_ONE_KIND)
    for _ in range(max_depth):
        shorter = brackets.replace(b"[]", b"")
        if shorter == brackets or not shorter:
            return  # balanced within the limit, or not JSON (the decoder will say so)
        brackets = shorter
    raise depth_error(max_depth)


def scrub(value: Any) -> Any:
    """Return ``value`` with every lone surrogate in its strings (keys too) made U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [scrub(item) for item in value]
    if isinstance(value, dict):
        return {scrub(key): scrub(item) for key, item in value.items()}
    return value


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Decode one JSON document under the contract of this module.

    Raises:
        JSONDepthError: nested deeper than ``max_depth``.
        InvalidJSONError: not JSON (the message says where), or a NaN/Infinity constant.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    # Cheap on the hot path: a document with few brackets cannot be deep.
    if raw.count(b"[") + raw.count(b"{") > max_depth:
        _check_depth(raw, max_depth)
    text = data if isinstance(data, str) else raw.decode("utf-8", "replace")
    try:
        value = _DECODER.decode(text)
    except RecursionError as exc:
        raise depth_error(max_depth) from exc
    except ValueError as exc:
        raise InvalidJSONError(f"invalid JSON: {exc}") from exc
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        value = scrub(value)
    return value


def dumps(value: Any, *, refuse_surrogates: bool = False) -> bytes:
    """Encode ``value`` as compact, strict UTF-8 JSON.

    A lone surrogate in a string is written as U+FFFD, or refused with
    ``refuse_surrogates`` (a job's result: its worker fails it rather than store other text).

    Raises:
        InvalidJSONError: ``value`` holds NaN or an infinity, or something JSON cannot hold;
            with ``refuse_surrogates``, a lone surrogate.
    """
    try:
        text = _ENCODER.encode(value)
    except (ValueError, TypeError) as exc:
        raise InvalidJSONError(f"cannot be sent as JSON: {exc}") from exc
    try:
        return text.encode()
    except UnicodeEncodeError as exc:
        if refuse_surrogates:
            char = ord(text[exc.start])
            raise InvalidJSONError(
                f"a string holds the lone surrogate U+{char:04X}, which UTF-8 cannot encode"
                " (os.fsdecode makes them of undecodable bytes)"
            ) from None
        return _SURROGATE.sub("\ufffd", text).encode()


def dumps_text(value: Any) -> str:
    """Like :func:`dumps`, as a ``str`` (for text replies such as ``+HI``)."""
    return dumps(value).decode()


def depth(value: Any) -> int:
    """Return how deeply a decoded value nests (a scalar 0, ``[]`` 1), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list | tuple):
            deepest = max(deepest, level + 1)
            stack.extend((child, level + 1) for child in item)
    return deepest


def check_depth(value: Any, max_depth: int = MAX_DEPTH) -> None:
    """Refuse a value built some other way (TOML, a form) that nests too deeply.

    Raises:
        JSONDepthError: nested deeper than ``max_depth``.
    """
    if depth(value) > max_depth:
        raise depth_error(max_depth)
