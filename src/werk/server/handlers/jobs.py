"""The job verbs: PUSH, PUSHB, FETCH, ACK and FAIL (Faktory's work protocol).

Replies to malformed arguments match Faktory 1.10's texts; docs/protocol.md lists them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from werk.errors import CommandError, JSONDepthError
from werk.job import QUEUE_NAME
from werk.manager.retry import FailureReport
from werk.protocol import jsonwire
from werk.protocol.resp import OK, encode_bulk
from werk.server.handlers.parse import encode_result, json_arg, object_arg, reply_json, text_arg

if TYPE_CHECKING:
    from werk.server.state import ConnectionState, ServerState

NUL = "\x00"
"""Refused in jids, job types, wids and names: no store keeps it in a key or text column."""
NO_JSON = "invalid JSON: unexpected end of JSON input"
"""Faktory's reply (Go's decoder text) to a PUSH or PUSHB without an argument."""


async def push(server: ServerState, conn: ConnectionState, arg: bytes) -> bytes:
    """PUSH {job}"""
    if not arg or arg.isspace():
        raise CommandError(NO_JSON)
    await server.manager.push(json_arg(arg))
    return OK


async def pushb(server: ServerState, conn: ConnectionState, arg: bytes) -> bytes:
    """PUSHB [{job}, ...]"""
    if not arg or arg.isspace():
        raise CommandError(NO_JSON)
    # The array itself is one level: each job may nest as deeply as one PUSHed alone.
    try:
        jobs = json_arg(arg, max_depth=jsonwire.MAX_DEPTH + 1)
    except JSONDepthError as exc:
        raise jsonwire.depth_error() from exc
    errors = await server.manager.push_bulk(jobs)
    return encode_bulk(reply_json(errors))


async def fetch(server: ServerState, conn: ConnectionState, arg: bytes) -> bytes:
    """FETCH queue [queue ...]"""
    # A name breaking the queue rule never holds a job (PUSH refuses it), and PostgreSQL
    # cannot even look up one holding NUL: such names are left out.
    queues = [name for name in text_arg(arg).split(" ") if QUEUE_NAME.match(name)]
    # The state a process learnt at its last BEAT: no store lookup on every FETCH.
    if not queues or (conn.wid and server.process_states.get(conn.wid) in ("quiet", "terminate")):
        # ``FETCH `` names only the empty queue, which never has a job (as in Faktory).
        conn.release()
        await server.idle_fetch()
        return encode_bulk(None)
    return encode_bulk(
        await server.manager.fetch(queues, conn.wid, alive=conn.alive, waiting=conn.release)
    )


async def ack(server: ServerState, conn: ConnectionState, arg: bytes) -> bytes:
    """ACK {"jid": "..."} | ACK {"jid": "...", "result": <JSON>} (Werk's results extension)
    | either with "expect": "reserved" (Werk's: refuse the ACK of a job not reserved)"""
    payload = object_arg(arg, "ACK")
    result = encode_result(payload.pop("result")) if "result" in payload else None
    jid = payload.get("jid")
    # Faktory decodes ACK into map[string]string: any value that is not a string is refused.
    if not isinstance(jid, str) or not all(isinstance(v, str) for v in payload.values()):
        raise CommandError(f"invalid ACK {text_arg(arg)}")
    # An unknown jid is fine for Faktory (+OK); a worker asking to know gets FAIL's answer.
    expected = payload.get("expect") == "reserved"
    held = NUL not in jid and await server.manager.ack(jid, result)  # PUSH refuses NUL
    if expected and not held:
        raise CommandError(f"Job not found {jid}")
    return OK


async def fail(server: ServerState, conn: ConnectionState, arg: bytes) -> bytes:
    """FAIL {"jid": "...", "errtype": "...", "message": "...", "backtrace": [...]}"""
    report = FailureReport.from_payload(object_arg(arg, "FAIL"))
    if report is None:
        raise CommandError(f"invalid FAIL {text_arg(arg)}")
    if not report.jid:
        raise CommandError("missing JID")
    if NUL in report.jid:
        raise CommandError(f"Job not found {report.jid}")  # PUSH refuses such a jid
    await server.manager.fail(report.jid, report)
    return OK
