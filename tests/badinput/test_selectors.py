"""Kind 1 of issue 13: a malformed selector never widens to "everything".

MUTATE filters, ``QUEUE ... *`` and the other selectors are refused with ``-ERR`` when they
do not parse, and then nothing changes; a valid one acts on what it names and no more.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.badinput.conftest import OK, Web, fetch, snapshot
from tests.helpers import Peer, error_text, push_line

CMDS = ("kill", "discard", "requeue")
TARGETS = ("retries", "scheduled", "dead")

MALFORMED_FILTERS: list[Any] = [
    "x",
    [],
    5,
    True,
    1.5,
    {"jids": ""},
    {"jids": {}},
    {"jids": False},
    {"jids": "seed-dead"},
    {"jids": [1]},
    {"jids": [None]},
    {"regexp": []},
    {"regexp": 5},
    {"regexp": {}},
    {"jobtype": []},
    {"jobtype": True},
    {"jid": ["seed-dead"]},  # a misspelt key must not be ignored (that would mean "all")
    {"JIDS": ["seed-dead"]},
    {"type": "Test"},
]


def mutate(peer: Peer, cmd: str, target: str, flt: Any) -> Any:
    return peer.call("MUTATE " + json.dumps({"cmd": cmd, "target": target, "filter": flt}))


def test_malformed_filter_is_refused_for_every_cmd_and_target(
    seeded: tuple[Peer, dict[str, Any]],
) -> None:
    peer, before = seeded
    for flt in MALFORMED_FILTERS:
        for cmd in CMDS:
            for target in TARGETS:
                text = error_text(mutate(peer, cmd, target, flt))
                assert text.startswith("ERR invalid filter"), (flt, cmd, target, text)
                assert snapshot(peer) == before, (flt, cmd, target)


def test_the_reported_inputs(seeded: tuple[Peer, dict[str, Any]]) -> None:
    peer, before = seeded
    # Each of these once emptied (or moved) the whole set and answered +OK.
    assert error_text(mutate(peer, "discard", "dead", "x")).startswith("ERR ")
    assert error_text(mutate(peer, "kill", "retries", "x")).startswith("ERR ")
    assert error_text(mutate(peer, "requeue", "dead", {"jids": False})).startswith("ERR ")
    assert error_text(mutate(peer, "discard", "dead", {"regexp": []})).startswith("ERR ")
    assert snapshot(peer) == before


def test_clear_with_criteria_is_refused(seeded: tuple[Peer, dict[str, Any]]) -> None:
    peer, before = seeded
    text = error_text(mutate(peer, "clear", "dead", {"jids": ["nothing-like-it"]}))
    assert "takes no filter" in text
    assert snapshot(peer) == before
    assert mutate(peer, "clear", "dead", None) == OK  # no filter: the whole set, as asked
    assert snapshot(peer)["sets"]["dead"] == 0


def test_valid_filters_act_on_what_they_name_only(seeded: tuple[Peer, dict[str, Any]]) -> None:
    peer, before = seeded
    # An empty jid list names no job (Faktory would take it as "every job").
    assert mutate(peer, "discard", "dead", {"jids": []}) == OK
    assert snapshot(peer) == before
    assert mutate(peer, "discard", "dead", {"jids": ["someone-else"]}) == OK
    assert snapshot(peer) == before
    # Criteria combine: the jid matches but the jobtype does not.
    assert mutate(peer, "discard", "dead", {"jids": ["seed-dead"], "jobtype": "Other"}) == OK
    assert snapshot(peer) == before
    assert mutate(peer, "kill", "retries", {"jids": ["seed-retry"], "regexp": "*q-retry*"}) == OK
    after = snapshot(peer)
    assert after["sets"]["retries"] == 0 and after["sets"]["dead"] == 2
    assert after["sets"]["scheduled"] == 1 and after["queues"] == before["queues"]
    # null and "" leave a criterion out, as Go's zero values do, beside one that is given;
    # when every key is empty the filter names no job and is refused (Faktory would take
    # it for the whole set), while {} with no key at all stays "every job" (Faktory's
    # clients send it so).
    seeded_now = snapshot(peer)
    for empty in ({"jids": None, "regexp": "", "jobtype": ""}, {"jobtype": ""}, {"regexp": ""}):
        text = error_text(mutate(peer, "requeue", "scheduled", empty))
        assert text.startswith("ERR invalid filter: ") and "names no job" in text, empty
        assert snapshot(peer) == seeded_now
    assert mutate(peer, "requeue", "scheduled", {"regexp": "*", "jobtype": ""}) == OK
    assert snapshot(peer)["queues"] == {"q1": 2}


def test_queue_star_means_every_queue_only_alone(seeded: tuple[Peer, dict[str, Any]]) -> None:
    peer, before = seeded
    assert peer.call(push_line("other-job-1", queue="q2")) == OK
    before = snapshot(peer)
    for line in ("QUEUE REMOVE q2 *", "QUEUE PAUSE q2 *", "QUEUE REMOVE * q2", "QUEUE PAUSE * *"):
        assert "must be the only queue name" in error_text(peer.call(line)), line
        assert snapshot(peer) == before, line
    # Nothing was paused: q1 still hands out its job at once.
    got = fetch(peer, "q1")
    assert got is not None and got["jid"] == "seed-waiting"
    assert peer.call("ACK " + json.dumps({"jid": "seed-waiting"})) == OK
    assert peer.call("QUEUE REMOVE q2") == OK
    assert snapshot(peer)["queues"] == {}
    assert peer.call("QUEUE PAUSE *") == OK  # '*' alone: every queue, as in Faktory


# -- the property: any malformed selector, any cmd and target ---------------------------

SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
ANY_JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
NOT_A_LIST_OF_STRINGS = ANY_JSON.filter(
    lambda v: v is not None and not (isinstance(v, list) and all(isinstance(i, str) for i in v))
)
NOT_A_STRING = ANY_JSON.filter(lambda v: v is not None and not isinstance(v, str))


@st.composite
def malformed_filters(draw: st.DrawFn) -> Any:
    """A MUTATE filter that does not parse: not an object, or one key of the wrong type
    (the others may be valid), or an unknown key."""
    kind = draw(st.sampled_from(["not-object", "jids", "regexp", "jobtype", "unknown"]))
    if kind == "not-object":
        return draw(ANY_JSON.filter(lambda v: v is not None and not isinstance(v, dict)))
    flt: dict[str, Any] = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "jids": st.lists(st.text(max_size=12), max_size=3),
                "regexp": st.text(max_size=8),
                "jobtype": st.text(max_size=8),
            },
        )
    )
    if kind == "jids":
        flt["jids"] = draw(NOT_A_LIST_OF_STRINGS)
    elif kind in ("regexp", "jobtype"):
        flt[kind] = draw(NOT_A_STRING)
    else:
        flt[
            draw(
                st.text(min_size=1, max_size=8).filter(
                    lambda k: k not in flt and k not in ("jids", "regexp", "jobtype")
                )
            )
        ] = draw(ANY_JSON)
    return flt


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    flt=malformed_filters(),
    cmd=st.sampled_from(("clear", *CMDS)),
    target=st.sampled_from(TARGETS),
)
def test_any_malformed_selector_changes_nothing(
    seeded: tuple[Peer, dict[str, Any]], flt: Any, cmd: str, target: str
) -> None:
    peer, before = seeded
    reply = mutate(peer, cmd, target, flt)
    assert error_text(reply).startswith("ERR "), reply
    assert snapshot(peer) == before


async def test_web_bulk_action_with_a_filter_too_long_acts_on_nothing(web: Web) -> None:
    # "All matching" with a filter the page would have cut short (so matching more) is
    # refused whole.
    for index in range(3):
        await web.fail(f"bulk-dead-{index}", retry=-1)
    long_text = "x" * 201
    response = await web.post("/dead", {"action": "delete_all", "q": long_text})
    assert response.status_code == 400
    assert (await web.stats())["sets"]["dead"] == 3
    response = await web.post("/dead", {"action": "delete_all", "q": "bulk-dead-1"})
    assert response.status_code == 303
    assert (await web.stats())["sets"]["dead"] == 2


# -- Werk's MUTATE target "queue": discard by jids only -----------------------------------


def discard_queued(peer: Peer, payload: dict[str, Any]) -> Any:
    return peer.call("MUTATE " + json.dumps({"cmd": "discard", "target": "queue", **payload}))


def test_queue_target_refuses_any_selector_but_jids(seeded: tuple[Peer, dict[str, Any]]) -> None:
    peer, before = seeded
    wide: list[Any] = [None, {}, {"regexp": "*"}, {"jobtype": "Test"}, {"jids": None}]
    mixed = [{"jids": ["seed-waiting"], "regexp": "*"}, {"jids": ["seed-waiting"], "jobtype": "T"}]
    for flt in [*MALFORMED_FILTERS, *wide, *mixed]:
        text = error_text(discard_queued(peer, {"queue": "q1", "filter": flt}))
        assert text.startswith("ERR invalid filter"), (flt, text)
        assert snapshot(peer) == before, flt
    text = error_text(discard_queued(peer, {"queue": "q1"}))  # no filter: not "all"
    assert text.startswith("ERR invalid filter"), text
    for queue in (None, "", "*", "q1 q2", "q1\u00e9", 5, ["q1"]):
        text = error_text(discard_queued(peer, {"queue": queue, "filter": {"jids": ["x"]}}))
        assert "needs a queue" in text, (queue, text)
        assert snapshot(peer) == before, queue
    for cmd in ("clear", "kill", "requeue"):
        payload = {
            "cmd": cmd,
            "target": "queue",
            "queue": "q1",
            "filter": {"jids": ["seed-waiting"]},
        }
        text = error_text(peer.call("MUTATE " + json.dumps(payload)))
        assert text.startswith("ERR only discard"), (cmd, text)
        assert snapshot(peer) == before, cmd


def test_queue_target_deletes_what_it_names_only(seeded: tuple[Peer, dict[str, Any]]) -> None:
    peer, before = seeded
    # Given one job waiting in q1 and one scheduled for q1
    # When jids name nothing there, nothing changes and the reply counts 0
    assert discard_queued(peer, {"queue": "q1", "filter": {"jids": []}}) == 0
    assert discard_queued(peer, {"queue": "q1", "filter": {"jids": ["someone-else"]}}) == 0
    assert discard_queued(peer, {"queue": "q2", "filter": {"jids": ["seed-waiting"]}}) == 0
    assert discard_queued(peer, {"queue": "q1", "filter": {"jids": ["seed-scheduled"]}}) == 0
    assert snapshot(peer) == before
    # Then the waiting job named in its queue is deleted, and nothing else
    reply = discard_queued(peer, {"queue": "q1", "filter": {"jids": ["seed-waiting", "x"]}})
    assert reply == 1
    after = snapshot(peer)
    assert after["queues"] == {} and after["sets"] == before["sets"]
    assert fetch(peer, "q1") is None


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(flt=malformed_filters())
def test_any_malformed_queue_selector_changes_nothing(
    seeded: tuple[Peer, dict[str, Any]], flt: Any
) -> None:
    peer, before = seeded
    reply = discard_queued(peer, {"queue": "q1", "filter": flt})
    assert error_text(reply).startswith("ERR "), reply
    assert snapshot(peer) == before
