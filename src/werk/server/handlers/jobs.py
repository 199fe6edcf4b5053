"""The job verbs: PUSH, PUSHB, FETCH, ACK and FAIL (Faktory's work protocol)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from werk.errors import CommandError
from werk.manager.retry import FailureReport
from werk.protocol.resp import OK, encode_bulk
from werk.server.handlers.parse import encode_result, json_arg, object_arg, text_arg

if TYPE_CHECKING:
    from werk.server.state import ConnectionState, ServerState


async def push(server: ServerState, conn: ConnectionState, arg: bytes) -> bytes:
    """PUSH {job}"""
    await server.manager.push(json_arg(arg))
    return OK


async def pushb(server: ServerState, conn: ConnectionState, arg: bytes) -> bytes:
    """PUSHB [{job}, ...]"""
    errors = await server.manager.push_bulk(json_arg(arg))
    return encode_bulk(json.dumps(errors, separators=(",", ":")).encode())


async def fetch(server: ServerState, conn: ConnectionState, arg: bytes) -> bytes:
    """FETCH queue [queue ...]"""
    queues = [name for name in text_arg(arg).split(" ") if name]
    if not queues:
        raise CommandError("must call fetch with at least one queue")
    # The state a process learnt at its last BEAT: no store lookup on every FETCH.
    if conn.wid and server.process_states.get(conn.wid) in ("quiet", "terminate"):
        await server.idle_fetch()
        return encode_bulk(None)
    return encode_bulk(await server.manager.fetch(queues, conn.wid, alive=conn.alive))


async def ack(server: ServerState, conn: ConnectionState, arg: bytes) -> bytes:
    """ACK {"jid": "..."} | ACK {"jid": "...", "result": <JSON>} (Werk's results extension)"""
    payload = object_arg(arg, "ACK")
    result = encode_result(payload.pop("result")) if "result" in payload else None
    jid = payload.get("jid")
    if not isinstance(jid, str) or not jid or not all(isinstance(v, str) for v in payload.values()):
        raise CommandError(f"invalid ACK {text_arg(arg)}")
    await server.manager.ack(jid, result)
    return OK


async def fail(server: ServerState, conn: ConnectionState, arg: bytes) -> bytes:
    """FAIL {"jid": "...", "errtype": "...", "message": "...", "backtrace": [...]}"""
    payload = object_arg(arg, "FAIL")
    jid = payload.get("jid")
    if not isinstance(jid, str) or not jid:
        raise CommandError("missing JID")
    await server.manager.fail(jid, FailureReport.from_payload(payload))
    return OK
