"""The verb table: one handler per command, each parsing, calling the manager, encoding.

Handlers hold no job rules (Faktory's rule: commands have no business logic). Each one's
docstring starts with its wire syntax; docs/protocol.md is the full reference.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from werk.errors import CommandError
from werk.manager.retry import FailureReport
from werk.protocol import commands as verbs
from werk.protocol.resp import OK, encode_bulk
from werk.server.handlers_batch import batch
from werk.server.handlers_limit import limit
from werk.server.handlers_track import track
from werk.storage.base import SET_NAMES, SetName

if TYPE_CHECKING:
    from werk.server.connection import Connection
    from werk.server.server import Server

Handler = Callable[["Server", "Connection", bytes], Awaitable[bytes | None]]

MUTATE_COMMANDS = ("clear", "kill", "discard", "requeue")


def _json(arg: bytes) -> Any:
    try:
        return json.loads(arg)
    except ValueError as exc:
        raise CommandError(f"invalid JSON: {exc}") from exc


def _text(arg: bytes) -> str:
    return arg.decode("utf-8", "replace")


async def push(server: Server, conn: Connection, arg: bytes) -> bytes:
    """PUSH {job}"""
    await server.manager.push(_json(arg))
    return OK


async def pushb(server: Server, conn: Connection, arg: bytes) -> bytes:
    """PUSHB [{job}, ...]"""
    errors = await server.manager.push_bulk(_json(arg))
    return encode_bulk(json.dumps(errors, separators=(",", ":")).encode())


async def fetch(server: Server, conn: Connection, arg: bytes) -> bytes:
    """FETCH queue [queue ...]"""
    queues = [name for name in _text(arg).split(" ") if name]
    if not queues:
        raise CommandError("must call fetch with at least one queue")
    # The state a process learnt at its last BEAT: no store lookup on every FETCH.
    if conn.wid and server.process_states.get(conn.wid) in ("quiet", "terminate"):
        await server.idle_fetch()
        return encode_bulk(None)
    return encode_bulk(await server.manager.fetch(queues, conn.wid, alive=conn.alive))


def _jid_payload(arg: bytes, verb: str) -> dict[str, Any]:
    try:
        payload = json.loads(arg)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise CommandError(f"invalid {verb} {_text(arg)}")
    return payload


async def ack(server: Server, conn: Connection, arg: bytes) -> bytes:
    """ACK {"jid": "..."}"""
    payload = _jid_payload(arg, "ACK")
    jid = payload.get("jid")
    if not isinstance(jid, str) or not jid or not all(isinstance(v, str) for v in payload.values()):
        raise CommandError(f"invalid ACK {_text(arg)}")
    await server.manager.ack(jid)
    return OK


async def fail(server: Server, conn: Connection, arg: bytes) -> bytes:
    """FAIL {"jid": "...", "errtype": "...", "message": "...", "backtrace": [...]}"""
    payload = _jid_payload(arg, "FAIL")
    jid = payload.get("jid")
    if not isinstance(jid, str) or not jid:
        raise CommandError("missing JID")
    await server.manager.fail(jid, FailureReport.from_payload(payload))
    return OK


async def beat(server: Server, conn: Connection, arg: bytes) -> bytes:
    """BEAT {"wid": "...", "current_state": "quiet|terminate", "rss_kb": n}"""
    payload = _jid_payload(arg, "BEAT")
    wid = payload.get("wid")
    if not isinstance(wid, str) or not wid:
        raise CommandError(f"invalid BEAT {_text(arg)}")
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


async def info(server: Server, conn: Connection, arg: bytes) -> bytes:
    """INFO"""
    return encode_bulk(json.dumps(await server.info(), separators=(",", ":")).encode())


async def flush(server: Server, conn: Connection, arg: bytes) -> bytes:
    """FLUSH"""
    await server.manager.flush()
    return OK


async def end(server: Server, conn: Connection, arg: bytes) -> None:
    """END (no reply: the server closes the connection)"""
    conn.closing = True
    return None


async def mutate(server: Server, conn: Connection, arg: bytes) -> bytes:
    """MUTATE {"cmd": "clear|kill|discard|requeue", "target": "retries|scheduled|dead",
    "filter": {"jids": [...], "regexp": "glob", "jobtype": "..."}}"""
    try:
        payload = json.loads(arg)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise CommandError("invalid format")
    target = payload.get("target")
    if target not in SET_NAMES:
        raise CommandError("invalid target for mutation command")
    cmd = payload.get("cmd")
    if cmd not in MUTATE_COMMANDS:
        raise CommandError("unknown mutate operation")
    flt = payload.get("filter")
    name: SetName = target
    await server.manager.mutate(str(cmd), name, flt if isinstance(flt, dict) else None)
    return OK


async def queue(server: Server, conn: Connection, arg: bytes) -> bytes:
    """QUEUE PAUSE|RESUME|REMOVE name [name ...] | *; QUEUE LATENCY name [name ...]"""
    sub, _, rest = _text(arg).partition(" ")
    names = [name for name in rest.split(" ") if name]
    sub = sub.upper()
    if sub not in ("PAUSE", "RESUME", "REMOVE", "LATENCY"):
        raise CommandError(f"no such QUEUE subcommand: {sub}")
    if not names:
        raise CommandError(f"QUEUE {sub} needs at least one queue name")
    if sub == "LATENCY":
        if "*" in names:
            raise CommandError("QUEUE LATENCY does not support wildcards")
        latency = await server.manager.latency(names)
        return encode_bulk(json.dumps(latency, separators=(",", ":")).encode())
    selected = server.manager.queues_of(names)
    actions = {
        "PAUSE": server.manager.pause,
        "RESUME": server.manager.resume,
        "REMOVE": server.manager.remove,
    }
    await actions[sub](selected)
    return OK


HANDLERS: dict[str, Handler] = {
    verbs.PUSH: push,
    verbs.PUSHB: pushb,
    verbs.FETCH: fetch,
    verbs.ACK: ack,
    verbs.FAIL: fail,
    verbs.BEAT: beat,
    verbs.INFO: info,
    verbs.FLUSH: flush,
    verbs.END: end,
    verbs.MUTATE: mutate,
    verbs.QUEUE: queue,
    verbs.BATCH: batch,
    verbs.TRACK: track,
    verbs.LIMIT: limit,
}

NEEDS_ARGUMENT = frozenset(
    {
        verbs.PUSH,
        verbs.PUSHB,
        verbs.FETCH,
        verbs.ACK,
        verbs.FAIL,
        verbs.BEAT,
        verbs.MUTATE,
        verbs.QUEUE,
        verbs.LIMIT,
    }
)
