"""Job chains (Werk's extension) through a real server on SQLite, Redis and PostgreSQL: the
steps in ``custom.chain`` run in order, each once; a failure waits for the retry; a dead step
ends the chain; ``chain_result`` passes the ACK's result on; a malformed chain is refused at
PUSH and PUSHB, naming the step, with nothing stored (property-tested)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.badinput.conftest import snapshot
from tests.enterprise.support import bulk_json, job
from tests.helpers import Peer, error_text
from werk.manager.chains import MAX_STEPS
from werk.protocol.resp import Simple

OK = Simple("OK")


def push(peer: Peer, payload: dict[str, Any]) -> None:
    assert peer.call("PUSH " + json.dumps(payload)) == OK


def take(peer: Peer, queue: str = "work") -> dict[str, Any]:
    fetched = bulk_json(peer.call(f"FETCH {queue}"))
    assert isinstance(fetched, dict)
    return fetched


def ack(peer: Peer, jid: str, **extra: Any) -> None:
    assert peer.call("ACK " + json.dumps({"jid": jid, **extra})) == OK


def fail(peer: Peer, jid: str) -> None:
    doc = {"jid": jid, "errtype": "E", "message": "boom"}
    assert peer.call("FAIL " + json.dumps(doc)) == OK


def nothing_queued(peer: Peer) -> bool:
    return snapshot(peer)["queues"] == {}


def chained(*steps: dict[str, Any], **custom: Any) -> dict[str, Any]:
    return job("A", **custom, chain=list(steps))


def test_three_steps_run_in_order_each_once(flushed_peer: Peer) -> None:
    # Given a chain A -> B -> C, where B has a jid of its own and C has none
    b, c = job("B", args=[2]), job("C", args=[3])
    del c["jid"]
    first = chained(b, c)
    push(flushed_peer, first)
    # When each step is fetched and acknowledged, the next one (only) appears
    assert take(flushed_peer)["jid"] == first["jid"]
    assert nothing_queued(flushed_peer)
    ack(flushed_peer, first["jid"])
    second = take(flushed_peer)
    assert (second["jid"], second["jobtype"], second["args"]) == (b["jid"], "B", [2])
    assert second["custom"] == {"chain": [c]}
    assert second["created_at"].endswith("Z")
    ack(flushed_peer, second["jid"])
    ack(flushed_peer, second["jid"])  # a second ACK of the same job continues nothing
    third = take(flushed_peer)
    assert third["jobtype"] == "C" and third["args"] == [3] and "custom" not in third
    assert third["jid"] not in (first["jid"], second["jid"]) and third["jid"]
    assert nothing_queued(flushed_peer)
    ack(flushed_peer, third["jid"])
    # Then the chain is over: nothing more is queued
    assert nothing_queued(flushed_peer)
    assert flushed_peer.call("FETCH work") is None


def test_a_failed_step_continues_once_its_retry_succeeds(flushed_peer: Peer) -> None:
    b, c = {**job("B"), "retry": 2}, job("C")
    first = chained(b, c)
    push(flushed_peer, first)
    ack(flushed_peer, take(flushed_peer)["jid"])
    # When B fails, C does not come; B waits in the retry set
    fail(flushed_peer, take(flushed_peer)["jid"])
    assert nothing_queued(flushed_peer)
    assert snapshot(flushed_peer)["sets"]["retries"] == 1
    # Then B, retried and acknowledged, continues the chain with C
    requeue = {"cmd": "requeue", "target": "retries", "filter": {"jids": [b["jid"]]}}
    assert flushed_peer.call("MUTATE " + json.dumps(requeue)) == OK
    retried = take(flushed_peer)
    assert retried["jid"] == b["jid"] and retried["custom"]["chain"] == [c]
    ack(flushed_peer, b["jid"])
    assert take(flushed_peer)["jid"] == c["jid"]
    assert nothing_queued(flushed_peer)


def test_a_dead_step_ends_the_chain(flushed_peer: Peer) -> None:
    b, c = {**job("B"), "retry": -1}, job("C")
    push(flushed_peer, chained(b, c))
    ack(flushed_peer, take(flushed_peer)["jid"])
    fail(flushed_peer, take(flushed_peer)["jid"])
    state = snapshot(flushed_peer)
    assert state["queues"] == {} and state["sets"]["dead"] == 1
    assert state["sets"]["scheduled"] == 0 and state["sets"]["retries"] == 0


def result_of(peer: Peer, jid: str, timeout: float = 0.0) -> dict[str, Any]:
    doc = bulk_json(peer.call("RESULT " + json.dumps({"jid": jid, "timeout": timeout})))
    assert isinstance(doc, dict)
    return doc


def test_an_ended_chain_fails_the_later_steps_results(flushed_peer: Peer) -> None:
    # Given a chain whose middle step dies and whose last step asks for a result
    b, c = {**job("B"), "retry": -1}, job("C", result_ttl=60)
    push(flushed_peer, chained(b, c))
    assert result_of(flushed_peer, c["jid"])["state"] == "queued"
    ack(flushed_peer, take(flushed_peer)["jid"])
    # When B dies, Then a wait on C's result ends with its failure, naming why
    fail(flushed_peer, take(flushed_peer)["jid"])
    doc = result_of(flushed_peer, c["jid"], timeout=5)
    assert doc["state"] == "failed" and doc["error"]["errtype"] == "ChainEnded"
    assert f"job {b['jid']} died" in doc["error"]["message"]
    # And a chain ended by a refused step does the same for the steps after it
    d, e = job("D", unique_for=60), job("E", result_ttl=60)
    push(flushed_peer, {**d, "jid": "twin-of-d"})
    push(flushed_peer, chained(d, e))
    take(flushed_peer)  # the twin
    ack(flushed_peer, take(flushed_peer)["jid"])  # A: D is refused, the chain ends
    doc = result_of(flushed_peer, e["jid"], timeout=5)
    assert doc["state"] == "failed" and "the next step was refused" in doc["error"]["message"]


def test_a_step_with_chain_result_gets_the_previous_result(flushed_peer: Peer) -> None:
    b = job("B", args=["x"], chain_result=True)
    c = job("C", args=[1], chain_result=True)
    d = job("D", args=[2])
    push(flushed_peer, chained(b, c, d))
    ack(flushed_peer, take(flushed_peer)["jid"], result={"n": [1, 2]})
    second = take(flushed_peer)
    assert second["args"] == [{"n": [1, 2]}, "x"]
    ack(flushed_peer, second["jid"])  # no result: null goes on
    third = take(flushed_peer)
    assert third["args"] == [None, 1]
    ack(flushed_peer, third["jid"], result=7)  # D does not ask: its args stay
    assert take(flushed_peer)["args"] == [2]


def test_steps_take_the_normal_push_path(flushed_peer: Peer) -> None:
    # A step with result_ttl gets its result record, and a scheduled step waits for its time
    b = job("B", result_ttl=60)
    c = {**job("C"), "at": "2099-01-01T00:00:00Z"}
    push(flushed_peer, chained(b, c))
    ack(flushed_peer, take(flushed_peer)["jid"])
    doc = bulk_json(flushed_peer.call("RESULT " + json.dumps({"jid": b["jid"]})))
    assert doc["state"] == "queued"
    ack(flushed_peer, take(flushed_peer)["jid"], result="done")
    doc = bulk_json(flushed_peer.call("RESULT " + json.dumps({"jid": b["jid"]})))
    assert doc["state"] == "succeeded" and doc["result"] == "done"
    state = snapshot(flushed_peer)
    assert state["queues"] == {} and state["sets"]["scheduled"] == 1


def test_a_later_step_asking_for_a_result_can_be_waited_for_at_once(flushed_peer: Peer) -> None:
    # The last step's RESULT is "queued" from the chain's push on, not "unknown"
    c = job("C", result_ttl=60)
    push(flushed_peer, chained(job("B"), c))
    doc = bulk_json(flushed_peer.call("RESULT " + json.dumps({"jid": c["jid"], "timeout": 0.2})))
    assert doc["state"] == "queued" and doc["jobtype"] == "C"
    ack(flushed_peer, take(flushed_peer)["jid"])
    ack(flushed_peer, take(flushed_peer)["jid"])
    ack(flushed_peer, take(flushed_peer)["jid"], result=[3])
    doc = bulk_json(flushed_peer.call("RESULT " + json.dumps({"jid": c["jid"]})))
    assert doc["state"] == "succeeded" and doc["result"] == [3]


def test_a_result_too_deep_for_the_next_step_ends_the_chain(flushed_peer: Peer) -> None:
    # 99 levels are a valid result (the ACK is 100 deep), but prepended to the step's args
    # the job would nest 101 levels: the chain ends and the server goes on
    deep: Any = 0
    for _ in range(99):
        deep = [deep]
    push(flushed_peer, chained(job("B", chain_result=True)))
    ack(flushed_peer, take(flushed_peer)["jid"], result=deep)
    assert nothing_queued(flushed_peer)
    push(flushed_peer, chained(job("B", chain_result=True)))
    ack(flushed_peer, take(flushed_peer)["jid"], result=deep[0][0])  # 97 levels: it goes on
    assert take(flushed_peer)["args"] == [deep[0][0]]


def test_a_refused_step_ends_the_chain_quietly(flushed_peer: Peer) -> None:
    # The next step is unique and its twin holds the lock: the chain ends there
    b, c = job("B", unique_for=60), job("C")
    twin = {**b, "jid": "twin-of-b"}
    push(flushed_peer, chained(b, c))
    push(flushed_peer, twin)
    ack(flushed_peer, take(flushed_peer)["jid"])
    assert take(flushed_peer)["jid"] == "twin-of-b"
    assert nothing_queued(flushed_peer)


MALFORMED: list[tuple[Any, str]] = [
    ({}, "custom.chain must be a list of jobs"),
    ("B", "custom.chain must be a list of jobs"),
    ([], "custom.chain must hold 1 to 50 jobs, not 0"),
    ([job("B")] * (MAX_STEPS + 1), "custom.chain must hold 1 to 50 jobs, not 51"),
    (["B"], "custom.chain[0]: a chain step must be a job object"),
    ([job("B"), {"jobtype": "C"}], "custom.chain[1]: "),
    ([job("B"), job("C", args=[1], chain=[job("D")])], "custom.chain[1]: chains do not nest"),
    ([job("B", chain_result=1)], "custom.chain[0]: custom.chain_result must be true or false"),
    ([{**job("B"), "queue": "a b"}], 'custom.chain[0]: cannot get "a b" queue'),
    ([{**job("B"), "priority": 10}], "custom.chain[0]: jobs must have a priority"),
    ([job("B", result_ttl=-1)], "custom.chain[0]: result_ttl must be more than 0"),
    ([job("B"), {**job("C"), "args": "x"}], "custom.chain[1]: "),
    ([{**job("B"), "at": "garbage"}], "custom.chain[0]: invalid timestamp for 'at'"),
    ([job("B", unique_for="x")], "custom.chain[0]: unique_for must be a number"),
    ([job("B", bid="b-none")], "custom.chain[0]: no such batch b-none"),
]

BAD_FIELDS: list[Any] = [
    {"at": "garbage"},
    {"at": 5},
    {"priority": 0},
    {"reserve_for": 86401},
    {"retry": "x"},
    {"queue": "a b"},
    {"custom": {"unique_for": "x"}},
    {"custom": {"unique_for": 60, "unique_until": "never"}},
    {"custom": {"expires_in": "x"}},
    {"custom": {"expires_in": 1e300}},
    {"custom": {"expires_at": "garbage"}},
    {"custom": {"expires_at": 5}},
    {"custom": {"result_ttl": "x"}},
    {"custom": {"result_ttl": 0}},
    {"custom": {"bid": 5}},
    {"custom": {"bid": "b-none"}},
]
"""One field breaking one rule PUSH applies: Faktory's job rules, then each feature's
(unique jobs, expiring jobs, results, batches); tracking and throttles add none."""


@pytest.mark.parametrize("bad", BAD_FIELDS, ids=lambda bad: json.dumps(bad))
def test_a_step_is_refused_with_the_message_its_own_push_gives(
    flushed_peer: Peer, bad: dict[str, Any]
) -> None:
    # Given a step breaking one push rule, refused as a job of its own with some message
    step = {**job("B"), **bad}
    alone = error_text(flushed_peer.call("PUSH " + json.dumps(step)))
    assert alone.startswith("ERR "), alone
    # When it is the chain's second step, the parent's PUSH and PUSHB are refused with it
    payload = chained(job("C"), step, unique_for=60, result_ttl=60, track=1)
    assert error_text(flushed_peer.call("PUSH " + json.dumps(payload))) == (
        f"ERR custom.chain[1]: {alone[4:]}"
    )
    refused = bulk_json(flushed_peer.call("PUSHB " + json.dumps([payload])))
    assert refused == {payload["jid"]: f"custom.chain[1]: {alone[4:]}"}
    # Then nothing is stored: no job, no result record, no unique lock
    assert nothing_queued(flushed_peer)
    doc = bulk_json(flushed_peer.call("RESULT " + json.dumps({"jid": payload["jid"]})))
    assert doc["state"] == "unknown"
    del payload["custom"]["chain"]
    push(flushed_peer, payload)


def test_a_step_joining_a_batch_that_exists_is_accepted(flushed_peer: Peer) -> None:
    new = {"description": "d", "success": job("Done")}
    reply = flushed_peer.call("BATCH NEW " + json.dumps(new))
    assert isinstance(reply, bytes)
    bid = reply.decode()
    push(flushed_peer, chained(job("B", bid=bid)))
    status = bulk_json(flushed_peer.call(f"BATCH STATUS {bid}"))
    assert status["total"] == 0  # the step joins its batch when it is pushed, not before


@pytest.mark.parametrize(("steps", "message"), MALFORMED)
def test_a_malformed_chain_is_refused_naming_the_step(
    flushed_peer: Peer, steps: Any, message: str
) -> None:
    payload = chained(unique_for=60)
    payload["custom"]["chain"] = steps
    assert error_text(flushed_peer.call("PUSH " + json.dumps(payload))).startswith(
        "ERR " + message
    ), steps
    refused = bulk_json(flushed_peer.call("PUSHB " + json.dumps([payload])))
    assert refused[payload["jid"]].startswith(message)
    # Nothing stored, no unique lock left: the same job without its chain is accepted
    assert nothing_queued(flushed_peer)
    del payload["custom"]["chain"]
    push(flushed_peer, payload)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
BAD_STEP = JSON.filter(lambda v: not isinstance(v, dict)) | st.fixed_dictionaries(
    {"jobtype": st.text(max_size=3) | JSON, "args": JSON}, optional={"queue": JSON, "jid": JSON}
).filter(lambda v: not (isinstance(v.get("args"), list) and v.get("jobtype")))
NOT_A_NUMBER = JSON.filter(
    lambda v: v is not None and (isinstance(v, bool) or not isinstance(v, int | float))
)
BAD_FEATURE_STEP = st.builds(
    lambda name, value: {"jobtype": "B", "args": [], "custom": {name: value}},
    st.sampled_from(["unique_for", "expires_in", "result_ttl"]),
    NOT_A_NUMBER,
) | st.sampled_from(BAD_FIELDS).map(lambda bad: {"jobtype": "B", "args": [], **bad})
"""A well-formed job but for one field breaking a feature's push rule (or Faktory's)."""
BAD_STEP |= BAD_FEATURE_STEP
"""A value that is no valid step: not an object, one whose jobtype or args is wrong, or
one breaking another rule PUSH applies."""


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    good=st.integers(min_value=0, max_value=3),
    bad=BAD_STEP,
    where=st.integers(min_value=0, max_value=3),
)
def test_any_malformed_step_is_refused_and_nothing_is_stored(
    flushed_peer: Peer, good: int, bad: Any, where: int
) -> None:
    steps: list[Any] = [job("B") for _ in range(good)]
    index = min(where, good)
    steps.insert(index, bad)
    payload = chained(*steps)
    text = error_text(flushed_peer.call("PUSH " + json.dumps(payload)))
    assert text.startswith(f"ERR custom.chain[{index}]: "), (steps, text)
    refused = bulk_json(flushed_peer.call("PUSHB " + json.dumps([payload, job("Other")])))
    assert list(refused) == [payload["jid"]]
    assert refused[payload["jid"]].startswith(f"custom.chain[{index}]: ")
    assert snapshot(flushed_peer)["queues"] == {"work": 1}
    assert flushed_peer.call("FLUSH") == OK
