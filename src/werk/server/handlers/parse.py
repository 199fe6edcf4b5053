"""Argument parsing shared by the verb handlers."""

from __future__ import annotations

import json
from typing import Any

from werk.errors import CommandError


def json_arg(arg: bytes) -> Any:
    try:
        return json.loads(arg)
    except ValueError as exc:
        raise CommandError(f"invalid JSON: {exc}") from exc


def text_arg(arg: bytes) -> str:
    return arg.decode("utf-8", "replace")


def object_arg(arg: bytes, verb: str) -> dict[str, Any]:
    try:
        payload = json.loads(arg)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise CommandError(f"invalid {verb} {text_arg(arg)}")
    return payload


def encode_result(value: Any) -> bytes:
    """Return a job's result value as compact JSON (as the results extension keeps it)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
