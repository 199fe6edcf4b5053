"""The TRACK command (Faktory Enterprise job tracking): parse, call tracking, encode.

No tracking rules here; they live in :mod:`werk.manager.tracking`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from werk.errors import CommandError
from werk.manager.tracking import tracking_of
from werk.protocol.resp import OK, encode_bulk
from werk.server.handlers.parse import json_arg, reply_json

if TYPE_CHECKING:
    from werk.server.state import ConnectionState, ServerState


async def track(server: ServerState, conn: ConnectionState, arg: bytes) -> bytes:
    """TRACK SET {"jid": "...", "percent": n, "desc": "...", "reserve_until": "..."} |
    TRACK GET jid"""
    sub, _, rest = arg.decode("utf-8", "replace").strip().partition(" ")
    sub = sub.upper()
    if sub not in ("SET", "GET"):
        raise CommandError(f"no such TRACK subcommand: {sub}")
    rest = rest.strip()
    if not rest:
        raise CommandError(f"TRACK {sub} needs an argument")
    tracking = tracking_of(server.manager)
    now = server.manager.clock()
    if sub == "GET":
        doc = await tracking.get(rest, now)
        return encode_bulk(reply_json(doc))
    update = json_arg(rest)
    await tracking.set(update, now, server.manager.extend)
    return OK
