"""The fate of a failed job: Faktory's retry-or-dead rule with Werk's extensions, decided once.

The server applies it to every FAIL (:func:`werk.manager.retry.record_failure`); the Python
worker asks it whether the FAIL it is about to send is the job's last, to call its
retries-exhausted hooks (:mod:`werk.client.exhausted`). Both read the same job payload: the
one the worker fetched is the one the server holds while the job is reserved.

Faktory's rule (PROTOCOL.md §3.3): ``retry`` 0 discards the job, a negative ``retry`` or
exhausted retries (the failure's ``retry_count`` reaching ``retry``) send it to the dead
set, otherwise it is retried. Werk's extensions, ignored by a Faktory server: errtype
``WorkerShutdown`` hands the job back (it runs again at once, no retry used), errtype
``werk.RateLimited`` reschedules it without using a retry (up to :data:`MAX_RATE_LIMITED`
times), and FAIL's ``dead: true`` sends it to the dead set whatever its ``retry``.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from werk.job import DEFAULT_RETRY
from werk.protocol.fields import is_int64

RATE_LIMITED: Final = "werk.RateLimited"
"""The errtype of a job that could not get its rate limit (the Python client's
``RateLimited``): a Werk server reschedules it without using a retry."""
WORKER_SHUTDOWN: Final = "WorkerShutdown"
"""The errtype of a job a worker handed back at a graceful shutdown (the Python client's
``SHUTDOWN_ERRTYPE``): a Werk extension runs it again at once, using no retry."""
MAX_RATE_LIMITED: Final = 20
"""A job rate-limited more often than this fails as usual (and uses its retries)."""

Fate = Literal["retry", "dead", "discard", "rate_limited", "handed_back"]
"""What one more failure does to a job: ``retry`` (the retry set, using a retry),
``dead`` (the dead set), ``discard`` (gone), ``rate_limited`` (the retry set, using no
retry) or ``handed_back`` (the scheduled set, due now, using no retry)."""
FINAL: Final = frozenset({"dead", "discard"})
"""The fates after which the job is never run again by itself: its retries are exhausted
(or it never had any, or the worker said ``dead``)."""


def counter(value: Any, default: int) -> int:
    """A server-owned counter read back from a stored job: anything but an int is unset."""
    return value if is_int64(value) else default


def retry_limit(job: dict[str, Any]) -> int:
    """The job's ``retry``: 25 when missing, ``null`` or not an integer."""
    return counter(job.get("retry"), DEFAULT_RETRY)


def next_retry_count(job: dict[str, Any]) -> int:
    """The ``failure.retry_count`` one more failure gives the job: 0 on its first failure,
    else one more than the recorded one."""
    previous = job.get("failure")
    if isinstance(previous, dict):
        return counter(previous.get("retry_count"), 0) + 1
    return 0


def rate_limited_count(job: dict[str, Any]) -> int:
    """How many rate-limited FAILs the job had (``job["rate_limited"]["count"]``)."""
    previous = job.get("rate_limited")
    return counter(previous.get("count"), 0) if isinstance(previous, dict) else 0


def failure_fate(job: dict[str, Any], errtype: str = "", *, dead: bool = False) -> Fate:
    """Decide what a FAIL with ``errtype`` (and Werk's ``dead`` field) does to ``job``, the
    payload as it was before this failure (as fetched).

    The order is the server's: a hand-back, then a rate limit with hand-outs left, then
    ``dead``, then Faktory's ``retry`` rule. The job is not changed.
    """
    if errtype == WORKER_SHUTDOWN:
        return "handed_back"
    if errtype == RATE_LIMITED and rate_limited_count(job) < MAX_RATE_LIMITED:
        return "rate_limited"
    if dead:
        return "dead"
    limit = retry_limit(job)
    if limit == 0:
        return "discard"
    if limit < 0 or next_retry_count(job) >= limit:
        return "dead"
    return "retry"
