"""JOBS refuses what it cannot read exactly, and never widens: an empty or malformed filter,
an unknown key, a number out of range or of the wrong type is ``-ERR``, not "the whole
set". Every test runs on each backend (tests/conftest.py ``backend``)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.badinput.conftest import snapshot
from tests.badinput.test_selectors import ANY_JSON, MALFORMED_FILTERS, malformed_filters
from tests.helpers import Peer, error_text
from werk.manager.listing import MAX_LIMIT, MAX_OFFSET

SETS = ("retries", "scheduled", "dead")
FILTERED = (*SETS, "working")
"""The targets that take a filter (the seed holds no reservation: working lists nothing)."""
SEEDED = {"retries": "seed-retry", "scheduled": "seed-scheduled", "dead": "seed-dead"}
EMPTY_FILTERS: list[Any] = [
    None,
    {},
    {"jobtype": ""},
    {"jids": None, "regexp": "", "jobtype": None},
]
TARGET_ERROR = "ERR JOBS target must be one of scheduled, retries, dead, queue, working"

REFUSED: list[tuple[dict[str, Any], str]] = [
    ({}, TARGET_ERROR),
    ({"target": ""}, TARGET_ERROR),
    ({"target": "Dead"}, TARGET_ERROR),
    ({"target": "retry"}, TARGET_ERROR),
    ({"target": ["dead"]}, TARGET_ERROR),
    ({"target": None}, TARGET_ERROR),
    ({"target": "dead", "filtre": {"jids": ["x"]}}, "ERR JOBS: unknown key 'filtre'"),
    ({"target": "dead", "Limit": 5}, "ERR JOBS: unknown key 'Limit'"),
    ({"target": "dead", "queue": "q1"}, "ERR JOBS queue applies to targets queue and working"),
    ({"target": "Working"}, TARGET_ERROR),
    ({"target": "working", "queue": "no spaces"}, "ERR JOBS queue must be a queue name"),
    ({"target": "working", "queue": None}, "ERR JOBS queue must be a queue name"),
    ({"target": "working", "queue": ["q1"]}, "ERR JOBS queue must be a queue name"),
    ({"target": "queue"}, "ERR JOBS target queue needs a queue: queue names must match"),
    ({"target": "queue", "queue": "no spaces"}, "ERR JOBS target queue needs a queue"),
    ({"target": "queue", "queue": 5}, "ERR JOBS target queue needs a queue"),
    ({"target": "queue", "queue": "q1", "filter": {"jids": ["x"]}}, "ERR JOBS target queue"),
    ({"target": "queue", "queue": "q1", "filter": None}, "ERR JOBS target queue takes no filter"),
]
OFFSETS: list[Any] = [-1, MAX_OFFSET + 1, 2**63, 2**64, 1.5, 0.0, "0", True, None, [], {}, 1e300]
LIMITS: list[Any] = [0, -1, MAX_LIMIT + 1, 10**20, 1.0, "10", False, None, [5]]


def jobs(peer: Peer, payload: Any) -> Any:
    return peer.call("JOBS " + json.dumps(payload))


def test_malformed_requests_are_refused(seeded: tuple[Peer, dict[str, Any]]) -> None:
    peer, before = seeded
    for payload, error in REFUSED:
        assert error_text(jobs(peer, payload)).startswith(error), payload
    for text in ("dead", "[]", '"dead"', "{", "null", '{"target":"dead"} x'):
        assert error_text(peer.call("JOBS " + text)) == "ERR JOBS needs a JSON object", text
    for offset in OFFSETS:
        error = error_text(jobs(peer, {"target": "dead", "offset": offset}))
        assert error == f"ERR JOBS offset must be a whole number from 0 to {MAX_OFFSET}", offset
    for limit in LIMITS:
        error = error_text(jobs(peer, {"target": "dead", "limit": limit}))
        assert error == f"ERR JOBS limit must be a whole number from 1 to {MAX_LIMIT}", limit
    assert snapshot(peer) == before


def test_an_empty_or_malformed_filter_lists_nothing(seeded: tuple[Peer, dict[str, Any]]) -> None:
    peer, before = seeded
    for target in FILTERED:
        for flt in EMPTY_FILTERS:
            text = error_text(jobs(peer, {"target": target, "filter": flt}))
            assert text == (
                "ERR invalid filter: names no criterion (leave filter out to list the whole set)"
                if not flt  # None or {}; keys that are all empty are refused as MUTATE does
                else f"ERR invalid filter: {', '.join(sorted(flt))} "
                f"{'is' if len(flt) == 1 else 'are'} empty, so it names no job; leave the"
                " filter out to act on the whole set"
            ), (target, flt)
        for flt in MALFORMED_FILTERS:
            text = error_text(jobs(peer, {"target": target, "filter": flt}))
            assert text.startswith("ERR invalid filter: "), (target, flt, text)
        # An empty jids list names no job: nothing is listed (never the whole set)
        page = json.loads(jobs(peer, {"target": target, "filter": {"jids": []}}))
        assert page["jobs"] == [] and page["total"] == 0, (target, page)
        # No filter at all is the whole set (here: its one job), as MUTATE's rule is.
        page = json.loads(jobs(peer, {"target": target}))
        assert [item["jid"] for item in page["jobs"]] == [
            SEEDED[t] for t in (target,) if t in SEEDED
        ]
    assert snapshot(peer) == before


FILTERS = (
    malformed_filters()
    | st.sampled_from(EMPTY_FILTERS)
    | st.fixed_dictionaries(
        {},
        optional={
            "jids": st.lists(st.sampled_from(["seed-dead", "seed-retry", "x" * 12]), max_size=3),
            "regexp": st.sampled_from(["*", "*seed*", "*q-dead*", "[", "*Test*"]),
            "jobtype": st.sampled_from(["Test", "Other"]),
        },
    )
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    target=st.sampled_from(FILTERED) | ANY_JSON,
    flt=FILTERS,
    offset=st.integers(-5, 5) | ANY_JSON,
    limit=st.integers(-5, 5) | ANY_JSON,
    keep=st.sets(st.sampled_from(["filter", "offset", "limit"])),
)
def test_any_request_is_refused_or_lists_what_it_names(
    seeded: tuple[Peer, dict[str, Any]],
    target: Any,
    flt: Any,
    offset: Any,
    limit: Any,
    keep: set[str],
) -> None:
    peer, before = seeded
    payload = {"target": target, "filter": flt, "offset": offset, "limit": limit}
    payload = {k: v for k, v in payload.items() if k == "target" or k in keep}
    reply = jobs(peer, payload)
    if not isinstance(reply, bytes):
        text = error_text(reply)
        assert text.startswith("ERR ") and "internal error" not in text, (payload, text)
        return
    page = json.loads(reply)
    assert target in FILTERED
    got_offset, got_limit = payload.get("offset", 0), payload.get("limit", 100)
    assert type(got_offset) is int and 0 <= got_offset and page["offset"] == got_offset
    assert type(got_limit) is int and 1 <= got_limit and len(page["jobs"]) <= got_limit
    if "filter" in payload:
        assert isinstance(flt, dict)
        if not any(flt.get(key) for key in flt):  # only {"jids": []}: a criterion naming
            assert flt.get("jids") == [] and page["jobs"] == []  # no job, so nothing listed
        for item in page["jobs"]:
            assert flt.get("jobtype") in (None, "", item["job"]["jobtype"])
            assert flt.get("jids") is None or item["jid"] in flt["jids"]
    assert snapshot(peer) == before
