"""The RESULT command (Werk's job results extension): parse, call results, encode.

No result rules here; they live in :mod:`werk.manager.results`. ACK with a result is
handled with the other job verbs (:mod:`.jobs`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from werk.errors import CommandError
from werk.protocol.resp import encode_bulk
from werk.server.handlers.parse import object_arg, reply_json

if TYPE_CHECKING:
    from werk.server.state import ConnectionState, ServerState


async def result(server: ServerState, conn: ConnectionState, arg: bytes) -> bytes:
    """RESULT {"jid": "...", "timeout": seconds}"""
    payload = object_arg(arg, "RESULT")
    jid = payload.get("jid")
    if not isinstance(jid, str) or not jid or "\x00" in jid:
        raise CommandError("RESULT needs a JSON object with a jid")
    timeout = payload.get("timeout", 0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
        raise CommandError("RESULT timeout must be a number of seconds, 0 or more")
    if not math.isfinite(timeout):
        raise CommandError("RESULT timeout must be finite")
    results = server.manager.results_or_fail()
    if timeout:
        conn.release()
        doc = await results.wait(
            jid,
            float(timeout),
            server.manager.clock,
            alive=lambda: conn.alive() and not server.stopping,
        )
    else:
        doc = await results.state(jid, server.manager.clock())
    return encode_bulk(reply_json(doc))
