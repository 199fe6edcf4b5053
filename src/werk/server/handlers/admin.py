"""The administration verbs: INFO, FLUSH, MUTATE and QUEUE."""

from __future__ import annotations

from typing import TYPE_CHECKING

from werk.errors import CommandError
from werk.manager.selectors import QUEUE_TARGET, parse_filter, queue_selection, queued_selection
from werk.protocol.resp import OK, encode_bulk, encode_int
from werk.server.handlers.parse import object_arg, reply_json, text_arg
from werk.storage.base import SET_NAMES, SetName

if TYPE_CHECKING:
    from werk.server.state import ConnectionState, ServerState

MUTATE_COMMANDS = ("clear", "kill", "discard", "requeue")


async def info(server: ServerState, conn: ConnectionState, arg: bytes) -> bytes:
    """INFO"""
    return encode_bulk(reply_json(await server.info()))


async def flush(server: ServerState, conn: ConnectionState, arg: bytes) -> bytes:
    """FLUSH"""
    await server.manager.flush()
    return OK


async def mutate(server: ServerState, conn: ConnectionState, arg: bytes) -> bytes:
    """MUTATE {"cmd": "clear|kill|discard|requeue", "target": "retries|scheduled|dead",
    "filter": {"jids": [...], "regexp": "glob", "jobtype": "..."}};
    Werk's MUTATE {"cmd": "discard", "target": "queue", "queue": "...", "filter": {"jids":
    [...]}} answers ``:n``, the jobs deleted."""
    payload = object_arg(arg, "MUTATE", "invalid format")
    # Faktory's order: the command first, then the target, then the filter.
    cmd = payload.get("cmd")
    if cmd not in MUTATE_COMMANDS:
        raise CommandError("unknown mutate operation")
    target = payload.get("target")
    if target == QUEUE_TARGET:
        queue_name, jids = queued_selection(cmd, payload)
        return encode_int(await server.manager.delete_queued(queue_name, jids))
    if target not in SET_NAMES:
        raise CommandError("invalid target for mutation command")
    flt = parse_filter(payload.get("filter"))
    name: SetName = target
    await server.manager.mutate(cmd, name, flt)
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
        return encode_bulk(reply_json(latency))
    try:
        selected = queue_selection(names)
    except CommandError as exc:
        raise CommandError(f"QUEUE {sub} {exc.message}") from exc
    actions = {
        "PAUSE": server.manager.pause,
        "RESUME": server.manager.resume,
        "REMOVE": server.manager.remove,
    }
    await actions[sub](selected)
    return OK
