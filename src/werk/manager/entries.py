"""A job as the store keeps it and as a worker gets it: its entry, its body, its rendering,
and where a failure sends it."""

from __future__ import annotations

import functools
import logging
from dataclasses import replace
from typing import Any

from werk.job import clamp_reserve_for, format_time
from werk.manager.retry import DEAD_TTL, FailureReport, record_failure
from werk.protocol import jsonwire
from werk.storage.base import Entry, Placement, Reservation, SetName

log = logging.getLogger("werk.manager")


def encode_job(job: dict[str, Any]) -> bytes:
    """Encode a job as compact strict JSON, without ``enqueued_at`` (the store keeps that
    aside).

    Raises:
        InvalidJSONError: the job holds NaN or an infinity (``1e400``), which no strict
            JSON parser of another language could read back.
    """
    job.pop("enqueued_at", None)
    return jsonwire.dumps(job)


def make_entry(job: dict[str, Any]) -> Entry:
    """Build the store's entry for a validated job."""
    return Entry(
        jid=job["jid"],
        queue=job["queue"],
        jobtype=job["jobtype"],
        priority=job["priority"],
        reserve_for=clamp_reserve_for(int(job.get("reserve_for") or 0)),
        body=encode_job(job),
    )


@functools.lru_cache(maxsize=4096)
def _stamp(enqueued_at: float) -> bytes:
    # Jobs pushed together share their enqueued_at: format each time once.
    return format_time(enqueued_at).encode()


def render(body: bytes, enqueued_at: float) -> bytes:
    """Return the job JSON handed to a worker: the body with ``enqueued_at`` spliced in."""
    return b'%b,"enqueued_at":"%b"}' % (body[:-1], _stamp(enqueued_at))


def failure_placement(
    reservation: Reservation, report: FailureReport, now: float
) -> Placement | None:
    """Where a failed job goes (Faktory's retry rule, :func:`record_failure`): the retry,
    dead or scheduled set with its updated body, or ``None`` when it is discarded. A stored
    job that cannot be read or rewritten (written before today's checks, or by hand) goes
    to the dead set as it is, where a person can see it: it must never stop the failure of
    the next job."""
    try:
        job = jsonwire.loads(reservation.entry.body)
        decision = record_failure(job, report, now)
        body = encode_job(job) if decision.target is not None else b""
    except Exception:
        log.exception("job %s cannot be updated for its failure", reservation.entry.jid)
        return Placement("dead", now + DEAD_TTL, reservation.entry)
    if decision.target is None:
        return None
    target: SetName = decision.target
    return Placement(target, decision.score, replace(reservation.entry, body=body))
