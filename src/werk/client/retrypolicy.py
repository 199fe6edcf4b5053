"""A job type's retry policy on the worker: when its failures are retried, and which are.

``retry_in`` (Sidekiq's ``sidekiq_retry_in``, Celery's ``retry_backoff``) picks the delay of
each retry; ``retry_on`` (Celery's ``autoretry_for``) names the exceptions worth a retry,
and any other sends the job to the dead set at once. Both are declared with
``@task(...)`` or ``Worker.register(...)`` and reach the server as Werk's FAIL fields
``retry_in`` and ``dead`` (docs/protocol.md, FAIL), so a Faktory server ignores them and
applies its own backoff.

The policy only speaks for a FAIL that will be retried (:func:`werk.fate.failure_fate`
says ``retry``): a job's last failure, a rate-limited job and a job handed back at a
shutdown are sent as they were. A :class:`~werk.client.failures.NoRetry` or
:class:`~werk.client.failures.RetryIn` the job raised decides instead of the policy.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from werk.client.joberrors import is_job_failure
from werk.fate import failure_fate, next_retry_count

log = logging.getLogger("werk.worker")

RetryDelay = Callable[[int, BaseException], float | None]
"""A retry delay policy: ``policy(retry_count, exc)`` returns the seconds until the retry
(rounded up to whole seconds; at most the server's dead-set TTL) or ``None`` for the
server's backoff. ``retry_count`` is the ``failure.retry_count`` this failure gets: 0 on the
job's first failure, 1 on its second, ... (Sidekiq's ``count``, Celery's
``request.retries``). It runs on the worker's event loop, so it should not block."""

RetryOn = tuple[type[BaseException], ...]
"""The exception classes whose failures are retried (Celery's ``autoretry_for``)."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter, Celery's ``retry_backoff``: retry number
    ``retry_count + 1`` waits ``min(max, base * 2**retry_count)`` seconds, or with
    ``jitter`` a uniformly random time between 0 and that (Celery's ``retry_jitter``).

    ``Backoff()`` is Celery's ``retry_backoff=True`` with its defaults (1 s doubling, at
    most 600 s, jittered). It is a :data:`RetryDelay`: give it as ``retry_in=``.

    Attributes:
        base: seconds of the first retry's delay (before jitter).
        max: the largest delay in seconds (Celery's ``retry_backoff_max``).
        jitter: draw the delay from ``[0, delay]`` so that jobs failing together do not
            retry together.

    Raises:
        ValueError: ``base`` or ``max`` is not a positive finite number.
    """

    base: float = 1.0
    max: float = 600.0
    jitter: bool = True

    def __post_init__(self) -> None:
        for name in ("base", "max"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"Backoff {name} must be positive seconds, not {value!r}")

    def __call__(self, retry_count: int, exc: BaseException) -> float:
        """The delay in seconds before retry number ``retry_count + 1``."""
        # 2**64 seconds is past any cap, and keeps a huge count from overflowing a float
        ceiling = min(self.max, self.base * 2 ** min(retry_count, 64))
        return random.uniform(0, ceiling) if self.jitter else ceiling


def check_retry_on(retry_on: Any) -> RetryOn | None:
    """``retry_on`` as a tuple of exception classes (one class is taken as a tuple of one).

    Raises:
        TypeError: it holds something that is not an exception class.
    """
    if retry_on is None:
        return None
    classes = retry_on if isinstance(retry_on, tuple) else (retry_on,)
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise TypeError(f"retry_on takes exception classes, not {cls!r}")
    return classes


def policy_fields(
    job: dict[str, Any],
    error: BaseException,
    errtype: str,
    retry_in: RetryDelay | None,
    retry_on: RetryOn | None,
) -> dict[str, Any]:
    """Werk's FAIL fields the job type's policy adds to the FAIL of ``job`` (as fetched)
    reporting ``error`` with ``errtype``: ``{"dead": True}`` when ``error`` is not one of
    ``retry_on``, ``{"retry_in": seconds}`` from ``retry_in``, or ``{}`` (the server's
    rule). A policy that raises or returns something other than a finite number from 0
    or ``None`` is logged, and the server's backoff applies."""
    if failure_fate(job, errtype) != "retry":
        return {}  # the last failure, a rate limit, a hand-back: nothing to decide
    if retry_on is not None and not isinstance(error, retry_on):
        return {"dead": True}
    if retry_in is None:
        return {}
    count = next_retry_count(job)
    extra = {"jid": job.get("jid"), "jobtype": job.get("jobtype")}
    try:
        delay = retry_in(count, error)
    except BaseException as exc:  # even SystemExit: the job fails as it would without it
        if not is_job_failure(exc):
            raise
        log.exception(_bad_policy(job, retry_in, "raised"), extra=extra)
        return {}
    if delay is None:
        return {}
    number = isinstance(delay, int | float) and not isinstance(delay, bool)
    if not (number and math.isfinite(delay) and delay >= 0):
        log.error(_bad_policy(job, retry_in, f"returned {delay!r}"), extra=extra)
        return {}
    return {"retry_in": math.ceil(delay)}


def _bad_policy(job: dict[str, Any], policy: RetryDelay, what: str) -> str:
    name = getattr(policy, "__qualname__", None) or repr(policy)
    return (
        f"job {job.get('jid')} {job.get('jobtype', '')}: retry_in policy {name} {what};"
        " the server's backoff applies"
    )
