"""The worker process verbs: BEAT and END (HELLO is the connection's handshake)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from werk.errors import CommandError
from werk.protocol.resp import OK, encode_bulk
from werk.server.handlers.parse import object_arg, text_arg

if TYPE_CHECKING:
    from werk.server.state import ConnectionState, ServerState


async def beat(server: ServerState, conn: ConnectionState, arg: bytes) -> bytes:
    """BEAT {"wid": "...", "current_state": "quiet|terminate", "rss_kb": n}"""
    payload = object_arg(arg, "BEAT")
    wid = payload.get("wid")
    if not isinstance(wid, str) or not wid:
        raise CommandError(f"invalid BEAT {text_arg(arg)}")
    rss = payload.get("rss_kb")
    wanted = payload.get("current_state")
    state = await server.processes.beat(
        wid, wanted if isinstance(wanted, str) else "", rss if isinstance(rss, int) else None
    )
    if state is None:
        raise CommandError(f"unknown worker {wid}")
    server.process_states[wid] = state
    if not state:
        return OK
    return encode_bulk(json.dumps({"state": state}, separators=(",", ":")).encode())


async def end(server: ServerState, conn: ConnectionState, arg: bytes) -> None:
    """END (no reply: the server closes the connection)"""
    conn.closing = True
    return None
