"""Failure handling: the ``failure`` record, the retry backoff and the retry-or-dead decision.

Faktory's rules (PROTOCOL.md §3.3): ``retry`` 0 discards the job, a negative ``retry`` or
exhausted retries send it to the dead set for 180 days, otherwise it is retried after
``count**4 + 15 + rand(0..29) * (count + 1)`` seconds, ``count`` being the retry count
after this failure was recorded. A FAIL with errtype ``werk.RateLimited`` (a job that could
not get its rate limit) is rescheduled without using a retry; see :func:`rate_limited`.
A FAIL with errtype ``WorkerShutdown`` (a job a worker handed back as it stopped) puts the
job back to run again at once, without using a retry; see :func:`handed_back`.
Two FAIL fields are Werk's own, for a worker that knows better than the backoff (a Faktory
server ignores them): ``retry_in`` (seconds) sets when the retry is due, if one is left, and
``dead: true`` sends the job to the dead set at once, whatever its ``retry``. Which of
these a FAIL does is decided in :mod:`werk.fate`, shared with the Python worker.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any, Final

from werk.fate import (
    MAX_RATE_LIMITED,
    RATE_LIMITED,
    WORKER_SHUTDOWN,
    counter,
    failure_fate,
    next_retry_count,
    rate_limited_count,
    retry_limit,
)
from werk.job import format_time
from werk.protocol.fields import Kind, typed_payload
from werk.storage.base import SetName

__all__ = [
    "DEAD_TTL",
    "MAX_RATE_LIMITED",
    "RATE_LIMITED",
    "WORKER_SHUTDOWN",
    "Decision",
    "FailureReport",
    "backoff",
    "handed_back",
    "rate_limited",
    "record_failure",
]

DEAD_TTL: Final = 180 * 24 * 3600.0
MAX_ERRTYPE: Final = 100
MAX_MESSAGE: Final = 1000
MAX_BACKTRACE: Final = 50
_RETRY_AFTER = re.compile(r"retry after (\d+(?:\.\d+)?)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class FailureReport:
    """What a worker (or the reaper) says about a failed execution."""

    errtype: str
    message: str
    backtrace: list[str]
    jid: str = ""
    retry_in: int | None = None
    """Werk's extension: seconds until the retry, instead of Faktory's backoff."""
    dead: bool = False
    """Werk's extension: no more retries, the job goes to the dead set now."""

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> FailureReport | None:
        """Build a report from a FAIL payload, trimming and defaulting as Faktory does.

        Returns ``None`` when a field has a type Faktory's ``FailPayload`` refuses
        (``errtype`` and ``message`` strings, ``backtrace`` a list of strings), or one of
        Werk's fields is wrong (``retry_in`` a whole number of seconds from 0, ``dead`` a
        boolean).
        """
        typed = typed_payload(payload, FAIL_FIELDS)
        if typed is None:
            return None
        retry_in = typed.get("retry_in")
        if retry_in is not None and retry_in < 0:
            return None
        errtype = typed.get("errtype", "").strip() or "unknown"
        message = typed.get("message", "").strip() or "unknown"
        backtrace: list[str] = typed.get("backtrace", [])
        return cls(
            errtype=_truncate(errtype, MAX_ERRTYPE),
            message=_truncate(message, MAX_MESSAGE),
            backtrace=backtrace[:MAX_BACKTRACE],
            jid=typed.get("jid", ""),
            retry_in=retry_in,
            dead=typed.get("dead", False),
        )


FAIL_FIELDS: dict[str, Kind] = {
    "jid": "str",
    "errtype": "str",
    "message": "str",
    "backtrace": "str_list",
    "retry_in": "int",
    "dead": "bool",
}
"""Faktory's ``FailPayload``: the field types a FAIL must have; ``retry_in`` and ``dead``
are Werk's (a Faktory server ignores them)."""


def _truncate(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit].decode(errors="ignore")


def backoff(count: int, rng: random.Random | None = None) -> float:
    """Return the delay in seconds before retry number ``count + 1``."""
    r = (rng or random).randint(0, 29)
    return float(count**4 + 15 + r * (count + 1))


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a failed job goes: ``"retries"``, ``"dead"``, ``"scheduled"`` (handed back at
    a worker's shutdown), or ``None`` to discard it."""

    target: SetName | None
    score: float


def record_failure(
    job: dict[str, Any], report: FailureReport, now: float, rng: random.Random | None = None
) -> Decision:
    """Update ``job["failure"]`` in place for one more failure and decide its fate, as
    :func:`werk.fate.failure_fate` says (the rule the Python worker's retries-exhausted
    hooks follow too)."""
    fate = failure_fate(job, report.errtype, dead=report.dead)
    if fate == "handed_back":
        return handed_back(job, report, now)
    if fate == "rate_limited":
        return _reschedule(job, report, now, rng)
    limit = retry_limit(job)
    count = next_retry_count(job)
    previous = job.get("failure")
    if isinstance(previous, dict):
        remaining = max(0, counter(previous.get("remaining"), limit) - 1)
        failed_at = previous.get("failed_at")
        if not isinstance(failed_at, str) or not failed_at:
            failed_at = format_time(now)
    else:
        remaining, failed_at = limit, format_time(now)
    failure: dict[str, Any] = {
        "retry_count": count,
        "remaining": remaining,
        "failed_at": failed_at,
        "message": report.message,
        "errtype": report.errtype,
        "backtrace": report.backtrace,
    }
    job["failure"] = failure
    if report.dead:  # Werk: the worker said this failure is final, so keep it in sight
        failure["remaining"] = 0
    if fate == "discard":
        return Decision(None, now)
    if fate == "dead":
        return Decision("dead", now + DEAD_TTL)
    delay = backoff(count, rng) if report.retry_in is None else min(report.retry_in, DEAD_TTL)
    due = now + delay
    failure["next_at"] = format_time(due)
    return Decision("retries", due)


def rate_limited(
    job: dict[str, Any], report: FailureReport, now: float, rng: random.Random | None = None
) -> Decision | None:
    """Reschedule a rate-limited job into the retry set without touching ``failure``.

    The delay is the ``retry after <seconds>`` found in the message (the text of
    ``-LIMITED``), else 15 s doubling per rate-limited FAIL of the job (at most an hour),
    plus up to 10% jitter. The count goes in ``job["rate_limited"]``. Returns ``None``
    past :data:`MAX_RATE_LIMITED`: then the FAIL is an ordinary failure.
    """
    if rate_limited_count(job) >= MAX_RATE_LIMITED:
        return None
    return _reschedule(job, report, now, rng)


def _reschedule(
    job: dict[str, Any], report: FailureReport, now: float, rng: random.Random | None
) -> Decision:
    count = rate_limited_count(job)
    found = _RETRY_AFTER.search(report.message)
    delay = float(found.group(1)) if found else min(15.0 * 2**count, 3600.0)
    delay = min(max(delay, 1.0), DEAD_TTL)
    due = now + delay + (rng or random).uniform(0, delay / 10)
    job["rate_limited"] = {
        "count": count + 1,
        "message": report.message,
        "next_at": format_time(due),
    }
    return Decision("retries", due)


def handed_back(job: dict[str, Any], report: FailureReport, now: float) -> Decision:
    """Put a job a worker handed back at its shutdown into the scheduled set, due now.

    Whatever its ``retry`` (0 and negative too), the job runs again as soon as the scheduler
    moves it to its queue; ``failure`` is left as it was, so no retry is used. The count of
    hand-backs and the last reason go in ``job["handed_back"]``.
    """
    previous = job.get("handed_back")
    count = counter(previous.get("count"), 0) if isinstance(previous, dict) else 0
    job["handed_back"] = {"count": count + 1, "message": report.message, "at": format_time(now)}
    return Decision("scheduled", now)
