"""LIMIT ACQUIRE's numbers on every backend: a number out of range is refused naming the
field (``-ERR LIMIT ACQUIRE: ...``), never an internal or a storage error. A ``limit`` past
64 bits overflowed SQLite's INTEGER and a ``period`` of 1e-320 made the bucket's interval
infinite (``-ERR internal error``); past 32 bits PostgreSQL's column overflowed."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import Peer
from werk.protocol.resp import Error, Simple

KINDS = ("concurrent", "bucket", "window", "leaky")

REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"limit": 2**31}, "limit"),
    ({"limit": 2**63}, "limit"),
    ({"limit": 10**30}, "limit"),
    ({"period": 1e-320}, "period"),
    ({"period": 1e-9}, "period"),
    ({"period": 1e308}, "period"),
    ({"period": 10**30}, "period"),
    ({"wait": -1}, "wait"),
    ({"wait": -1e-300}, "wait"),
]


def acquire(peer: Peer, name: str, kind: str, **fields: Any) -> Any:
    doc = {"name": name, "kind": kind, "limit": 3, "period": 5, "holder": "h1", **fields}
    return peer.call("LIMIT ACQUIRE " + json.dumps(doc))


def test_numbers_out_of_range_are_refused_naming_the_field(peer: Peer) -> None:
    for kind in KINDS:
        for fields, field in REFUSED:
            reply = acquire(peer, f"r-{kind}", kind, **fields)
            assert isinstance(reply, Error), (kind, fields, reply)
            assert reply.text.startswith(f"ERR LIMIT ACQUIRE: {field} must be"), (kind, reply)
        assert (
            peer.call(f"LIMIT STATUS r-{kind}")
            == json.dumps({"name": f"r-{kind}", "held": 0}, separators=(",", ":")).encode()
        )


def test_the_extremes_in_range_are_taken(peer: Peer) -> None:
    for kind in KINDS:
        for fields in ({"limit": 2**31 - 1}, {"period": 0.001}, {"period": 31536000}):
            name = f"x-{kind}-{len(json.dumps(fields))}-{next(iter(fields.values()))}"
            assert acquire(peer, name, kind, **fields) == Simple("OK"), (kind, fields)
            status = json.loads(peer.call(f"LIMIT STATUS {name}"))  # type: ignore[arg-type]
            assert status["held"] in (0, 1), (kind, fields, status)


NUMBERS = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0, 1, 0.001, 1e-320, 5e-324, 2**63 - 1, 2**63, 1e308])
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(KINDS),
    limit=NUMBERS,
    period=NUMBERS,
)
def test_any_numbers_get_a_clear_answer(peer: Peer, kind: str, limit: Any, period: Any) -> None:
    reply = acquire(peer, f"any-{kind}", kind, limit=limit, period=period)
    if isinstance(reply, Error):
        assert reply.text.startswith(("ERR LIMIT ACQUIRE: ", "LIMITED retry after ")), reply
    else:
        assert reply == Simple("OK"), reply
    assert isinstance(peer.call(f"LIMIT STATUS any-{kind}"), bytes)
