"""The worker process verbs: BEAT and END (HELLO is the connection's handshake), and
PROCESSES, Werk's read-only list of the worker processes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from werk.errors import CommandError
from werk.protocol.fields import Kind, typed_payload
from werk.protocol.resp import OK, encode_bulk
from werk.server.handlers.parse import object_arg, reply_json, text_arg

if TYPE_CHECKING:
    from werk.server.state import ConnectionState, ServerState


BEAT_FIELDS: dict[str, Kind] = {"wid": "str", "current_state": "str", "rss_kb": "int"}
"""Faktory's ``ClientBeat`` struct: the field types a BEAT must have."""


async def beat(server: ServerState, conn: ConnectionState, arg: bytes) -> bytes:
    """BEAT {"wid": "...", "current_state": "quiet|terminate", "rss_kb": n}"""
    payload = typed_payload(object_arg(arg, "BEAT"), BEAT_FIELDS)
    if payload is None:
        raise CommandError(f"invalid BEAT {text_arg(arg)}")
    wid = payload.get("wid", "")
    state = None
    if wid and "\x00" not in wid:
        state = await server.processes.beat(
            wid, payload.get("current_state", ""), payload.get("rss_kb")
        )
    if state is None:
        raise CommandError(f"unknown worker {wid}")
    server.process_states[wid] = state
    if not state:
        return OK
    return encode_bulk(reply_json({"state": state}))


async def end(server: ServerState, conn: ConnectionState, arg: bytes) -> None:
    """END (no reply: the server closes the connection)"""
    conn.closing = True
    return None


async def processes(server: ServerState, conn: ConnectionState, arg: bytes) -> bytes:
    """PROCESSES answers a bulk JSON object ``{"processes": [...]}``: every worker process
    known to the store, the most recently started first (see docs/protocol.md)."""
    if arg:
        raise CommandError("PROCESSES takes no argument")
    return encode_bulk(reply_json({"processes": await server.processes.listing()}))
