"""The job rules that need no store: validation, timestamps, backoff, failure records."""

from __future__ import annotations

import random
from typing import Any

import pytest

from werk.errors import CommandError
from werk.fate import FINAL, MAX_RATE_LIMITED, RATE_LIMITED, failure_fate
from werk.job import check_queue_name, clamp_reserve_for, format_time, parse_time, validate
from werk.manager.entries import render
from werk.manager.retry import DEAD_TTL, WORKER_SHUTDOWN, FailureReport, backoff, record_failure

NOW = 1_700_000_000.0


def job(**fields: Any) -> dict[str, Any]:
    return {"jid": "abcdefgh12", "jobtype": "T", "args": [], **fields}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"jid": "short"}, "jobs must have a reasonable jid parameter"),
        ({"jid": None}, "jobs must have a reasonable jid parameter"),
        ({"jobtype": ""}, "jobs must have a jobtype parameter"),
        ({"args": None}, "jobs must have an args parameter"),
        ({"reserve_for": 86401}, "jobs cannot be reserved for more than one day"),
        ({"priority": 10}, "jobs must have a priority between 1 and 9"),
    ],
)
def test_validation_messages(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(CommandError) as caught:
        validate(job(**fields), NOW)
    assert caught.value.message == message


def test_defaults_and_unknown_fields_kept() -> None:
    out = validate(job(blargh="foo", retry=None), NOW)
    assert out["queue"] == "default"
    assert out["retry"] == 25
    assert out["priority"] == 5
    assert out["blargh"] == "foo"
    assert out["created_at"] == format_time(NOW)


def test_queue_names() -> None:
    check_queue_name("a.b-c_9")
    with pytest.raises(CommandError, match=r'cannot get "a b" queue'):
        check_queue_name("a b")


def test_time_formats_round_trip() -> None:
    assert format_time(NOW) == "2023-11-14T22:13:20Z"
    assert format_time(NOW + 0.25) == "2023-11-14T22:13:20.25Z"
    for text in (
        "2023-11-14T22:13:20.123Z",
        "2023-11-14T22:13:20.123000000+00:00",
        "2023-11-14T23:13:20.123+01:00",
        "2023-11-14T22:13:20.123000",
    ):
        assert parse_time(text) == pytest.approx(NOW + 0.123, abs=1e-6)
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_reserve_for_clamp() -> None:
    assert clamp_reserve_for(0) == 1800
    assert clamp_reserve_for(5) == 60
    assert clamp_reserve_for(100000) == 86400
    assert clamp_reserve_for(300) == 300


def test_backoff_bounds() -> None:
    rng = random.Random(1)
    for count, low, high in ((0, 15, 44), (1, 16, 74), (5, 640, 814)):
        for _ in range(50):
            assert low <= backoff(count, rng) <= high


def test_failure_record_and_decisions() -> None:
    report = FailureReport.from_payload({"errtype": " ", "message": "x" * 2000, "backtrace": None})
    assert report.errtype == "unknown" and len(report.message) == 1000 and report.backtrace == []
    j = job(retry=1)
    first = record_failure(j, report, NOW)
    assert first.target == "retries" and 15 <= first.score - NOW <= 44
    assert j["failure"]["retry_count"] == 0 and j["failure"]["remaining"] == 1
    assert "next_at" in j["failure"]
    second = record_failure(j, report, NOW + 100)
    assert second.target == "dead" and second.score == NOW + 100 + DEAD_TTL
    assert j["failure"]["retry_count"] == 1 and j["failure"]["failed_at"] == format_time(NOW)
    assert record_failure(job(retry=0), report, NOW).target is None
    assert record_failure(job(retry=-1), report, NOW).target == "dead"


@pytest.mark.parametrize("retry", [0, -1, 25])
def test_a_job_handed_back_at_a_shutdown_runs_again_at_once_using_no_retry(retry: int) -> None:
    j = job(retry=retry)
    if retry > 0:
        record_failure(j, FailureReport("Boom", "first", []), NOW)
    before = j.get("failure")
    shutdown = FailureReport(WORKER_SHUTDOWN, "worker stopped", [])
    for n in (1, 2):
        decision = record_failure(j, shutdown, NOW + n)
        assert decision.target == "scheduled" and decision.score == NOW + n
        assert j.get("failure") == before  # no retry used, the last real failure kept
        assert j["handed_back"] == {
            "count": n,
            "message": "worker stopped",
            "at": format_time(NOW + n),
        }


def test_render_splices_enqueued_at() -> None:
    assert render(b'{"jid":"x"}', NOW) == b'{"jid":"x","enqueued_at":"2023-11-14T22:13:20Z"}'


@pytest.mark.parametrize("retry", [None, "x", -3, -1, 0, 1, 2, 25])
@pytest.mark.parametrize("retry_count", [None, 0, 1, 2, 24, 30])
@pytest.mark.parametrize("errtype", ["Boom", WORKER_SHUTDOWN, RATE_LIMITED])
@pytest.mark.parametrize("dead", [False, True])
@pytest.mark.parametrize("limited", [0, MAX_RATE_LIMITED])
def test_the_fate_the_worker_predicts_is_the_one_the_server_applies(
    retry: Any, retry_count: int | None, errtype: str, dead: bool, limited: int
) -> None:
    # The worker's retries-exhausted hooks and the server read one rule (werk.fate): the
    # fate it predicts from the fetched job is final exactly when the server then sends
    # the job to the dead set or discards it.
    fetched = job(retry=retry, rate_limited={"count": limited})
    if retry_count is not None:
        fetched["failure"] = {"retry_count": retry_count, "remaining": 1}
    fate = failure_fate(fetched, errtype, dead=dead)
    decision = record_failure(fetched, FailureReport(errtype, "m", [], dead=dead), NOW)
    expected = {"dead": "dead", None: "discard"}.get(decision.target)
    assert (fate in FINAL) == (expected is not None)
    if expected is not None:
        assert fate == expected


def test_the_fate_follows_faktory_retry_rule() -> None:
    assert failure_fate(job(retry=0)) == "discard"
    assert failure_fate(job(retry=-1)) == "dead"  # negative: the dead set at once
    assert failure_fate(job(retry=2)) == "retry"  # first failure: retry_count 0
    assert failure_fate(job(retry=2, failure={"retry_count": 0})) == "retry"
    assert failure_fate(job(retry=2, failure={"retry_count": 1})) == "dead"  # 3rd run failed
    assert failure_fate(job(retry=0), dead=True) == "dead"  # NoRetry keeps it in sight
    assert failure_fate(job(retry=0), WORKER_SHUTDOWN) == "handed_back"
