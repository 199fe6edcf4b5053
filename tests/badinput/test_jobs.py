"""Kinds 3 and 6 of issue 13: job fields typed as Faktory types them, server-owned fields
validated, and nothing a client sends can break the server or other clients later.
"""

from __future__ import annotations

import json
from typing import Any

from tests.badinput.conftest import OK, fetch, snapshot
from tests.helpers import Peer, error_text, push_line

BASE = {"jid": "typed-job-01", "jobtype": "T", "args": []}

REFUSED: list[dict[str, Any]] = [
    {"retry": 2.5},
    {"retry": 2.0},
    {"retry": 9223372036854775808},
    {"retry": "3"},
    {"retry": True},
    {"reserve_for": 60.5},
    {"priority": 5.5},
    {"priority": 0},
    {"priority": 10},
    {"created_at": 5},
    {"enqueued_at": 5},
    {"at": 5},
    {"at": "2099-01-01"},
    {"backtrace": "x"},
    {"backtrace": 1.5},
    {"failure": "x"},
    {"failure": 1.5},
    {"failure": {"retry_count": "x"}},
    {"failure": {"retry_count": 1.5}},
    {"failure": {"remaining": "x"}},
    {"failure": {"message": 5}},
    {"failure": {"backtrace": "x"}},
    {"failure": {"backtrace": [1]}},
    {"custom": []},
    {"queue": 5},
    {"queue": "%"},
    {"queue": "%", "at": "2099-01-01T00:00:00Z"},
    {"jobtype": []},
    {"jid": 12345678},
    {"args": {}},
    {"jid": "nul\u0000in-jid"},
    {"jobtype": "T\u0000"},
]

ACCEPTED: list[dict[str, Any]] = [
    {"retry": 9223372036854775807},
    {"retry": -1, "reserve_for": 0, "backtrace": 5, "priority": 9},
    {"retry": None, "created_at": None, "at": None, "failure": None, "custom": None},
    {"failure": {"retry_count": 2, "remaining": 3, "message": "m", "backtrace": ["a"]}},
    {"jid": "日本語"},  # 9 bytes: Faktory counts bytes, not characters
    {"at": "2099-01-01T00:00:00.123456789+02:00"},
]


def test_fields_of_the_wrong_type_are_refused_and_nothing_is_stored(peer: Peer) -> None:
    for fields in REFUSED:
        job = {**BASE, **fields}
        assert error_text(peer.call("PUSH " + json.dumps(job))).startswith("ERR "), fields
        reply = peer.call("PUSHB " + json.dumps([job]))
        if isinstance(reply, bytes):  # a rule (not a type) refuses the job alone
            assert list(json.loads(reply)) == [job["jid"]], (fields, reply)
        else:  # a type refuses the whole PUSHB, as Faktory's decoder does
            assert error_text(reply).startswith("ERR invalid JSON: job 0: "), fields
        state = snapshot(peer)
        assert state["queues"] == {} and sum(state["sets"].values()) == 0, fields


def test_fields_faktory_accepts_are_accepted(peer: Peer) -> None:
    for index, fields in enumerate(ACCEPTED):
        job = {**BASE, "jid": f"accepted-{index:03d}", **fields}
        assert peer.call("PUSH " + json.dumps(job)) == OK, fields
    state = snapshot(peer)
    assert state["queues"] == {"default": 5} and state["sets"]["scheduled"] == 1
    fetched = [fetch(peer) for _ in range(5)]
    assert 9223372036854775807 in [job["retry"] for job in fetched if job is not None]


def test_pushb_with_one_wrong_typed_job_stores_none_of_them(peer: Peer) -> None:
    good = [{**BASE, "jid": f"bulk-good-{i}"} for i in range(3)]
    bad = {**BASE, "jid": "bulk-bad-01", "retry": "x"}
    text = error_text(peer.call("PUSHB " + json.dumps([*good, bad])))
    assert text.startswith("ERR invalid JSON: job 3: ")
    assert snapshot(peer)["queues"] == {}
    # A job breaking a rule (not a type) is refused alone, with Faktory's bare message.
    rule = {**BASE, "jid": "short"}
    assert json.loads(peer.call("PUSHB " + json.dumps([*good, rule]))) == {  # type: ignore[arg-type]
        "short": "jobs must have a reasonable jid parameter"
    }
    assert snapshot(peer)["queues"] == {"default": 3}


def test_numbers_json_cannot_carry_are_refused(peer: Peer) -> None:
    for value in ("NaN", "Infinity", "-Infinity", "1e400", "-1e400", "[1e999]"):
        for field in ("args", "custom"):
            inner = f"[{value}]" if field == "args" else f'{{"x":{value}}}'
            line = f'PUSH {{"jid":"nan-job-001","jobtype":"T","args":[],"{field}":{inner}}}'
            line = line.replace('"args":[],"args"', '"args"')
            assert error_text(peer.call(line)).startswith("ERR "), line
    assert snapshot(peer)["queues"] == {}


def test_what_is_handed_out_is_strict_json(peer: Peer) -> None:
    # Lone surrogates and invalid UTF-8 are taken (as Go takes them) and handed out as U+FFFD.
    line = b'PUSH {"jid":"strict-job-1","jobtype":"T","args":["\\ud800x","\xff"]}'
    assert peer.call(line) == OK
    got = fetch(peer)
    assert got is not None and got["args"] == ["\ufffdx", "\ufffd"]


def test_unique_job_with_a_lone_surrogate(peer: Peer) -> None:
    custom = {"unique_for": 60}
    line = push_line("unique-sur-1", args=["\ud800"], custom=custom)
    assert peer.call(line.encode("utf-8", "surrogatepass")) == OK
    again = push_line("unique-sur-2", args=["\ud800"], custom=custom)
    assert error_text(peer.call(again.encode("utf-8", "surrogatepass"))).startswith("NOTUNIQUE")


def test_error_replies_quoting_a_surrogate_are_sent(peer: Peer) -> None:
    text = error_text(peer.call('FAIL {"jid":"\\ud800nosuchjid"}'))
    assert text == "ERR Job not found \ufffdnosuchjid"
    assert peer.call(push_line("after-sur-01")) == OK


def test_a_client_made_failure_of_the_right_shape_is_kept(peer: Peer) -> None:
    failure = {"retry_count": 3, "remaining": 1, "message": "old", "errtype": "E"}
    assert peer.call(push_line("own-failure1", failure=failure, retry=5)) == OK
    assert fetch(peer) is not None
    assert peer.call('FAIL {"jid":"own-failure1","message":"new"}') == OK
    state = snapshot(peer)["sets"]
    assert state["retries"] == 1 and state["working"] == 0


def test_keys_in_another_case_fill_their_field(peer: Peer) -> None:
    # Faktory's decoder matches keys regardless of case: "Queue" is the queue.
    line = '{"JID":"case-keys-01","Jobtype":"T","ARGS":[7],"Queue":"q2","Retry":3}'
    assert peer.call("PUSH " + line) == OK
    assert snapshot(peer)["queues"] == {"q2": 1}
    got = fetch(peer, "q2")
    assert got is not None
    assert (got["jid"], got["jobtype"], got["args"], got["retry"]) == ("case-keys-01", "T", [7], 3)
    assert "Queue" not in got
