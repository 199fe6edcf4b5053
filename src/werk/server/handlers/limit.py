"""The LIMIT verb: named rate limiters any worker can use over the protocol.

``LIMIT ACQUIRE {json}``, ``LIMIT RELEASE {json}`` and ``LIMIT STATUS name``; the handler
parses and checks the arguments, calls :class:`~werk.manager.throttles.RateLimiters` and
encodes the reply. docs/protocol.md (``### LIMIT ...``) is the reference.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from werk.errors import CommandError, InvalidJSONError, JSONDepthError, LimitedError
from werk.manager.throttles import LIMIT_KINDS, MAX_LIMIT, MAX_PERIOD, MIN_PERIOD, RateLimiters
from werk.protocol.fields import is_int64
from werk.protocol.resp import OK, encode_bulk
from werk.server.handlers.parse import json_arg, reply_json
from werk.storage.base import LimitKind

if TYPE_CHECKING:
    from werk.server.state import ConnectionState, ServerState

MAX_NAME = 200


def _object(text: str, sub: str) -> dict[str, Any]:
    try:
        payload = json_arg(text)
    except JSONDepthError:
        raise
    except InvalidJSONError as exc:
        raise CommandError(f"LIMIT {sub}: {exc.message}") from exc
    if not isinstance(payload, dict):
        raise CommandError(f"LIMIT {sub} expects a JSON object")
    return payload


def _name(value: Any) -> str:
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_NAME
        or " " in value
        or "\x00" in value
    ):
        raise CommandError(f"a limiter needs a name: 1-{MAX_NAME} characters, no spaces")
    return value


def _number(
    payload: dict[str, Any], key: str, default: float | None, low: float, high: float | None
) -> float:
    """A number of seconds in ``[low, high]`` (``None``: no bound but finiteness), or
    ``-ERR LIMIT ACQUIRE: <key> must be a number of seconds, ...``."""
    value = payload.get(key, default)
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < low
        or (high is not None and value > high)
    ):
        span = f"{low:g} or more" if high is None else f"{low:g} to {high:,.0f}"
        raise CommandError(f"LIMIT ACQUIRE: {key} must be a number of seconds, {span}")
    return float(value)


def _acquire_args(payload: dict[str, Any]) -> tuple[str, LimitKind, int, float, str | None, float]:
    name = _name(payload.get("name"))
    kind = payload.get("kind", "concurrent")
    if kind not in LIMIT_KINDS:
        raise CommandError(f"LIMIT ACQUIRE: kind must be one of {', '.join(LIMIT_KINDS)}")
    limit = payload.get("limit")
    if not isinstance(limit, int) or not is_int64(limit) or not 1 <= limit <= MAX_LIMIT:
        raise CommandError(f"LIMIT ACQUIRE: limit must be a whole number, 1 to {MAX_LIMIT}")
    default = 60.0 if kind == "concurrent" else None
    period = _number(payload, "period", default, MIN_PERIOD, MAX_PERIOD)
    holder = payload.get("holder")
    if holder is not None and (not isinstance(holder, str) or not holder or "\x00" in holder):
        raise CommandError("LIMIT ACQUIRE: holder must be a non-empty string")
    if kind == "concurrent" and holder is None:
        raise CommandError("LIMIT ACQUIRE: a concurrent limiter needs a holder")
    wait = _number(payload, "wait", 0.0, 0, None)  # the limiters cut it to 30 s
    found: LimitKind = kind
    return name, found, limit, period, holder, wait


async def limit(server: ServerState, conn: ConnectionState, arg: bytes) -> bytes:
    """LIMIT ACQUIRE {"name","kind","limit","period","holder","wait"} | LIMIT RELEASE
    {"name","holder"} | LIMIT STATUS name"""
    sub, _, rest = arg.decode("utf-8", "replace").partition(" ")
    sub = sub.upper()
    limiters = RateLimiters(server.manager)
    if sub == "ACQUIRE":
        args = _acquire_args(_object(rest, sub))
        if args[-1] > 0:  # it may wait: the replies pipelined before it go out first
            conn.release()
        result = await limiters.acquire(*args)
        if not result.acquired:
            raise LimitedError.after(result.retry_after)
        return OK
    if sub == "RELEASE":
        payload = _object(rest, sub)
        holder = payload.get("holder")
        if not isinstance(holder, str) or not holder or "\x00" in holder:
            raise CommandError("LIMIT RELEASE needs a holder")
        await limiters.release(_name(payload.get("name")), holder)
        return OK
    if sub == "STATUS":
        name = _name(rest.strip())
        held = await limiters.status(name)
        return encode_bulk(reply_json({"name": name, "held": held}))
    raise CommandError(f"no such LIMIT subcommand: {sub or '(none)'}")
