"""The BATCH command (Faktory Enterprise batches): parse, call the batch subsystem, encode.

No batch rules here; they live in :mod:`werk.manager.batches`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from werk.errors import CommandError
from werk.manager.batches import batches_of
from werk.protocol.resp import OK, encode_bulk
from werk.server.handlers.parse import json_arg, reply_json

if TYPE_CHECKING:
    from werk.server.state import ConnectionState, ServerState

SUBCOMMANDS = ("NEW", "OPEN", "COMMIT", "STATUS")


async def batch(server: ServerState, conn: ConnectionState, arg: bytes) -> bytes:
    """BATCH NEW {batch} | BATCH OPEN bid | BATCH COMMIT bid | BATCH STATUS bid"""
    sub, _, rest = arg.decode("utf-8", "replace").strip().partition(" ")
    sub = sub.upper()
    if sub not in SUBCOMMANDS:
        raise CommandError(f"no such BATCH subcommand: {sub}")
    rest = rest.strip()
    if not rest:
        raise CommandError(f"BATCH {sub} needs an argument")
    batches = batches_of(server.manager)
    now = server.manager.clock()
    if sub == "NEW":
        spec = json_arg(rest)
        return encode_bulk((await batches.new(spec, now)).encode())
    if sub == "OPEN":
        return encode_bulk((await batches.open(rest, now)).encode())
    if sub == "COMMIT":
        await batches.commit(rest, now)
        return OK
    status = await batches.status(rest, now)
    return encode_bulk(reply_json(status))
