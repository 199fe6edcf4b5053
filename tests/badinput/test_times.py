"""Times outside the years 0001 to 9999 in UTC, on every backend: refused where a client
gives one (``at``, ``expires_at``, TRACK's ``reserve_until``) naming the field. Before, an
offset could carry an accepted time into the year 10000 (``9999-12-31T23:59:59-23:59``):
the Scheduled page answered 500 and RESULT ``-ERR internal error`` for as long as the job
was there."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.badinput.conftest import OK, Live, snapshot
from tests.helpers import Peer, error_text, push_line
from werk.job import format_time, parse_time
from werk.webui.render import relative, utc

OUTSIDE = [
    "9999-12-31T23:59:59-23:59",
    "9999-12-31T23:59:59-00:01",
    "9999-12-31T23:59:59.9999999Z",
    "0001-01-01T00:00:00+23:59",
    "0001-01-01T00:00:00+00:01",
]


@st.composite
def rfc3339(draw: st.DrawFn) -> str:
    date = f"{draw(st.integers(0, 9999)):04d}-{draw(st.integers(1, 12)):02d}"
    date += f"-{draw(st.integers(1, 28)):02d}"
    clock = ":".join(f"{draw(st.integers(0, top)):02d}" for top in (23, 59, 59))
    fraction = draw(st.sampled_from(["", ".5", ".999999999", ".000000001", ".123"]))
    sign = draw(st.sampled_from("+-"))
    offset = draw(
        st.sampled_from(["", "Z", "z"])
        | st.builds(lambda h, m: f"{sign}{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))
    )
    return f"{date}T{clock}{fraction}{offset}"


@given(rfc3339())
def test_an_accepted_time_is_written_and_shown_again(text: str) -> None:
    try:
        ts = parse_time(text)
    except ValueError:
        return  # refused: the year 0, the 31st of a short month, or past the years 1-9999
    written = format_time(ts)
    assert abs(parse_time(written) - ts) < 1e-3, (text, written)
    assert utc(ts).endswith(" UTC") and utc(written).endswith(" UTC")
    assert relative(ts)


def test_times_outside_the_years_are_refused_naming_the_field(peer: Peer) -> None:
    assert peer.call(push_line("seed-waiting", queue="q1")) == OK
    before = snapshot(peer)
    for text in OUTSIDE:
        for fields, name in (
            ({"at": text}, "at"),
            ({"custom": {"expires_at": text}}, "expires_at"),
        ):
            reply = error_text(peer.call(push_line("jid-outside", **fields)))
            assert reply.startswith(f"ERR invalid timestamp for '{name}'"), (text, reply)
            assert "outside the years 0001 to 9999 in UTC" in reply, reply
            batch = [json.loads(push_line("jid-outside-b", **fields)[len("PUSH ") :])]
            errors = json.loads(peer.call("PUSHB " + json.dumps(batch)))  # type: ignore[arg-type]
            assert "outside the years" in errors["jid-outside-b"], errors
        assert snapshot(peer) == before, text
    job = peer.call("FETCH q1")
    assert isinstance(job, bytes)
    for text in OUTSIDE:
        reply = peer.call("TRACK SET " + json.dumps({"jid": "seed-waiting", "reserve_until": text}))
        assert error_text(reply).startswith("ERR invalid timestamp for 'reserve_until'"), reply


def test_the_last_time_is_taken_and_shown(live: Live) -> None:
    peer = live.peer()
    for jid, at, shown in (
        ("jid-last-1", "9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59"),
        ("jid-last-2", "9999-12-31T22:00:00-01:59", "9999-12-31T23:59:00Z"),
    ):
        assert peer.call(push_line(jid, at=at)) == OK
        doc: Any = json.loads(peer.call("RESULT " + json.dumps({"jid": jid})))  # type: ignore[arg-type]
        assert doc["state"] == "scheduled" and doc["at"].startswith(shown), doc
        assert live.get(f"/scheduled/{jid}").status_code == 200
        assert live.get(f"/jobs/{jid}").status_code in (200, 303)
    page = live.get("/scheduled")
    assert page.status_code == 200 and "9999-12-31 23:59:59 UTC" in page.text
