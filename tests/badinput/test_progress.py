"""TRACK SET's ``percent`` and ``desc`` take Faktory's types on every backend: a whole
number 0..100 and a string. Anything else was stored and echoed by TRACK GET as sent
(``1e300``, ``"x"``, ``{"a": 1}``); now it is refused and the last report stays."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.badinput.conftest import OK
from tests.helpers import Peer, push_line

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=5,
)


def report(peer: Peer, jid: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(peer.call(f"TRACK GET {jid}"))  # type: ignore[arg-type]
    return {key: doc.get(key) for key in ("percent", "desc")}


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(percent=JSON_VALUES | st.integers(-5, 105), desc=JSON_VALUES)
def test_only_faktory_types_are_kept(peer: Peer, percent: Any, desc: Any) -> None:
    jid = "jid-tracked-1"
    if report(peer, jid)["percent"] is None:  # the first example: a tracked job reported 7%
        assert peer.call(push_line(jid, custom={"track": True})) == OK
        assert peer.call("TRACK SET " + json.dumps({"jid": jid, "percent": 7, "desc": "d"})) == OK
    before = report(peer, jid)
    reply = peer.call("TRACK SET " + json.dumps({"jid": jid, "percent": percent, "desc": desc}))
    good_percent = percent is None or (type(percent) is int and 0 <= percent <= 100)
    good_desc = desc is None or isinstance(desc, str)
    if good_percent and good_desc:
        assert reply == OK, reply
        expected = {
            "percent": before["percent"] if percent is None else percent,
            "desc": before["desc"] if desc is None else desc,
        }
        assert report(peer, jid) == expected
    else:
        assert getattr(reply, "text", "").startswith("ERR TRACK SET "), reply
        assert report(peer, jid) == before
