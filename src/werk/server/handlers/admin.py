"""The administration verbs: INFO, FLUSH, MUTATE and QUEUE."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from werk.errors import CommandError
from werk.protocol.resp import OK, encode_bulk
from werk.server.handlers.parse import text_arg
from werk.storage.base import SET_NAMES, SetName

if TYPE_CHECKING:
    from werk.server.state import ConnectionState, ServerState

MUTATE_COMMANDS = ("clear", "kill", "discard", "requeue")


async def info(server: ServerState, conn: ConnectionState, arg: bytes) -> bytes:
    """INFO"""
    return encode_bulk(json.dumps(await server.info(), separators=(",", ":")).encode())


async def flush(server: ServerState, conn: ConnectionState, arg: bytes) -> bytes:
    """FLUSH"""
    await server.manager.flush()
    return OK


async def mutate(server: ServerState, conn: ConnectionState, arg: bytes) -> bytes:
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


async def queue(server: ServerState, conn: ConnectionState, arg: bytes) -> bytes:
    """QUEUE PAUSE|RESUME|REMOVE name [name ...] | *; QUEUE LATENCY name [name ...]"""
    sub, _, rest = text_arg(arg).partition(" ")
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
