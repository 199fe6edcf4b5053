"""Kind 6 and must-show 4 of issue 13: whatever PUSH accepts travels everywhere.

Any payload PUSH accepts is fetched as strict JSON, FAILed, reaped when its reservation
expires and shown on every web page, with no ``internal error`` anywhere; and the reaper
goes on past a stored job it cannot read.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.badinput.conftest import OK, Live, snapshot
from tests.helpers import Peer
from werk.protocol.resp import Error
from werk.storage.base import Entry

DAY = 86400.0


def strict(data: bytes) -> Any:
    """Parse as a strict parser of another language would: no NaN, no Infinity."""

    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} handed out")

    return json.loads(data, parse_constant=refuse)


# -- raw JSON text, including what Faktory's decoder or Werk must refuse ----------------

NUMBERS = st.sampled_from(
    ["0", "-1", "2.5", "1e400", "-1e400", "NaN", "Infinity", "9223372036854775808", "25"]
)
STRINGS = st.text(max_size=12).map(json.dumps) | st.sampled_from(
    ['"\\ud800"', '"\\udc00x"', '"\\ud83d\\ude00"', '"2099-01-01"', '""']
)
SCALARS = NUMBERS | STRINGS | st.sampled_from(["null", "true", "false"])


def raw_json(max_leaves: int = 12) -> st.SearchStrategy[str]:
    return st.recursive(
        SCALARS,
        lambda inner: (
            st.lists(inner, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]")
            | st.lists(st.tuples(STRINGS, inner), max_size=3).map(
                lambda kvs: "{" + ",".join(f"{k}:{v}" for k, v in kvs) + "}"
            )
        ),
        max_leaves=max_leaves,
    )


DEEP = st.integers(min_value=90, max_value=104).map(lambda n: "[" * n + "]" * n)
FIELDS = {
    "args": raw_json() | DEEP | st.just("[]"),
    "retry": SCALARS,
    "priority": SCALARS,
    "reserve_for": SCALARS,
    "backtrace": SCALARS,
    "created_at": SCALARS,
    "custom": raw_json(),
    "failure": raw_json()
    | st.sampled_from(['{"retry_count":"x"}', '{"retry_count":1.5}', '{"retry_count":3}']),
    "queue": st.sampled_from(['"default"', '""', '"%"', "5", "null", '"q-travel"']),
}


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, str]:
    """Field name -> raw JSON text of a job (jid and jobtype are added by the test)."""
    names = draw(st.lists(st.sampled_from(sorted(FIELDS)), unique=True))
    fields = {name: draw(FIELDS[name]) for name in names}
    fields.setdefault("args", "[]")
    return fields


class Travel:
    """One server, a producer and a worker, reused across hypothesis examples."""

    def __init__(self, live: Live) -> None:
        self.live = live
        self.producer = live.peer()
        self.worker = live.peer(wid="travel-worker", hostname="h", pid=1)
        self.count = 0

    def no_internal_error(self, reply: Any, what: str) -> None:
        assert not (isinstance(reply, Error) and "internal error" in reply.text), (what, reply)

    def pages(self, *paths: str) -> None:
        for path in ("/", "/queues", "/busy", "/retries", "/scheduled", "/dead", *paths):
            response = self.live.get(path)
            assert response.status_code == 200, (path, response.text[:300])


@pytest.fixture
def travel(live: Live) -> Travel:
    """The peers of one test: hypothesis runs every example inside one call of it."""
    return Travel(live)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(fields=payloads())
def test_any_accepted_payload_travels_everywhere(travel: Travel, fields: dict[str, str]) -> None:
    travel.count += 1
    # The worker beats, as a real one does: a worker silent for 60 s is reaped and its
    # connections closed (Sidekiq's rule), and the examples can outlast that on a busy machine
    assert travel.worker.call('BEAT {"wid":"travel-worker"}') == OK
    jid = f"travel-{travel.count:05d}"
    body = ",".join(f'"{name}":{text}' for name, text in fields.items())
    line = f'PUSH {{"jid":"{jid}","jobtype":"Travel",{body}}}'
    reply = travel.producer.call(line)
    travel.no_internal_error(reply, "PUSH")
    if reply != OK:
        assert isinstance(reply, Error), reply
        return
    queue = strict(("{" + body + "}").encode()).get("queue") or "default"
    # Fetched as strict JSON, shown while it runs, FAILed, shown in its set.
    job = strict(travel.worker.call(f"FETCH {queue}"))  # type: ignore[arg-type]
    assert job["jid"] == jid
    travel.pages(f"/queues/{quote(queue)}")
    failed = travel.worker.call(
        json.dumps({"jid": jid, "errtype": "E", "message": "m"}).join(("FAIL ", ""))
    )
    travel.no_internal_error(failed, "FAIL")
    assert failed == OK
    where = next(
        (name for name in ("retries", "dead") if snapshot(travel.producer)["sets"][name]), None
    )
    travel.pages(*([f"/{where}/{jid}"] if where else []))
    if where is not None:
        # Back to its queue, fetched again, and left to expire: the reaper takes it.
        move = {"cmd": "requeue", "target": where, "filter": {"jids": [jid]}}
        assert travel.producer.call("MUTATE " + json.dumps(move)) == OK
        assert strict(travel.worker.call(f"FETCH {queue}"))["jid"] == jid  # type: ignore[arg-type]
        assert travel.live.reap(ahead=2 * DAY) == 1
        assert snapshot(travel.producer)["sets"]["working"] == 0
        travel.pages()
    assert travel.producer.call("FLUSH") == OK


def test_the_reaper_goes_on_past_jobs_it_cannot_read(live: Live) -> None:
    # Given stored jobs written before today's checks, between two normal ones
    store = live.server.store
    bad = {
        "bad-failure1": b'{"jid":"bad-failure1","jobtype":"T","args":[],'
        b'"failure":{"retry_count":"x"}}',
        "bad-failure2": b'{"jid":"bad-failure2","jobtype":"T","args":[],"failure":1.5}',
        "not-json-001": b'{"jid":"not-json-001"',
        "too-deep-001": b'{"jid":"too-deep-001","args":' + b"[" * 975 + b"]" * 975 + b"}",
    }
    producer: Peer = live.peer()
    worker: Peer = live.peer(wid="reaper-worker")
    assert producer.call('PUSH {"jid":"normal-001","jobtype":"T","args":[]}') == OK
    live.run(
        store.enqueue([Entry(jid, "default", "T", 5, 60, body) for jid, body in bad.items()], 0.0)
    )
    assert producer.call('PUSH {"jid":"normal-002","jobtype":"T","args":[]}') == OK
    for _ in range(6):
        assert isinstance(worker.call("FETCH default"), bytes)
    assert snapshot(producer)["sets"]["working"] == 6
    # When every reservation has expired, the reaper fails each one
    assert live.reap(ahead=2 * DAY) == 6
    state = snapshot(producer)["sets"]
    assert state["working"] == 0 and state["retries"] + state["dead"] == 6
    # And the pages still show them
    for path in ("/retries", "/dead", *(f"/retries/{j}" for j in ("normal-001", "normal-002"))):
        assert live.get(path).status_code == 200, path
