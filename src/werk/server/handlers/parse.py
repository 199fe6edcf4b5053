"""Argument parsing shared by the verb handlers: every JSON argument goes through
:mod:`werk.protocol.jsonwire` (depth limit, strict numbers, U+FFFD for bad text)."""

from __future__ import annotations

from typing import Any

from werk.errors import CommandError, InvalidJSONError, JSONDepthError
from werk.protocol import jsonwire


def json_arg(arg: bytes | str, *, max_depth: int = jsonwire.MAX_DEPTH) -> Any:
    """Decode a JSON argument; raises :class:`~werk.errors.InvalidJSONError` (``-ERR``)."""
    return jsonwire.loads(arg, max_depth=max_depth)


def text_arg(arg: bytes) -> str:
    """Decode an argument as text, invalid UTF-8 becoming U+FFFD (as Go does)."""
    return arg.decode("utf-8", "replace")


def object_arg(arg: bytes | str, verb: str, error: str | None = None) -> dict[str, Any]:
    """Decode a JSON object argument; anything else is ``-ERR invalid <verb> <arg>``
    (or ``-ERR <error>`` when given).

    A document nested too deeply keeps its own message, which names the limit.
    """
    try:
        payload = jsonwire.loads(arg)
    except JSONDepthError:
        raise
    except InvalidJSONError:
        payload = None
    if not isinstance(payload, dict):
        text = arg if isinstance(arg, str) else text_arg(arg)
        raise CommandError(error or f"invalid {verb} {text}")
    return payload


def encode_result(value: Any) -> bytes:
    """Return a job's result value as compact strict JSON (as the results extension keeps
    it): a value holding NaN or an infinity is refused with ``-ERR``."""
    return jsonwire.dumps(value)


def reply_json(value: Any) -> bytes:
    """Encode a reply document (strict compact JSON) as bytes for a bulk reply."""
    return jsonwire.dumps(value)
