"""Building jobs to push: the :class:`Job` dataclass and its wire form.

A job is a JSON object; :meth:`Job.to_dict` produces it with a fresh ``jid`` and
``created_at`` and leaves out the fields left at their defaults, so the server applies
its own (queue ``default``, retry 25, priority 5).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from werk.job import format_time, new_jid


def _at(value: datetime | float | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("'at' must be an aware datetime (give it a tzinfo)")
        return format_time(value.timestamp())
    return format_time(float(value))


@dataclass(slots=True)
class Job:
    """A job to push.

    Attributes:
        jobtype: the name the worker registered the function under.
        args: positional arguments (JSON values only).
        queue: the queue name.
        jid: the job id; a random one is made when left empty.
        at: run no earlier than this (aware ``datetime``, Unix seconds or RFC 3339 text).
        retry: how many retries on failure (0: discard, -1: straight to the dead set).
        reserve_for: seconds the worker may hold the job before the server takes it back.
        priority: 1..9, higher runs first within a queue (a Werk extension).
        backtrace: how many backtrace lines a failing worker reports.
        custom: free-form data (batches, tracking, unique jobs read keys here).
    """

    jobtype: str
    args: Sequence[Any] = ()
    queue: str | None = None
    jid: str = field(default_factory=new_jid)
    at: datetime | float | str | None = None
    retry: int | None = None
    reserve_for: int | None = None
    priority: int | None = None
    backtrace: int | None = None
    custom: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the job's JSON object as it goes on the wire."""
        payload: dict[str, Any] = {
            "jid": self.jid,
            "jobtype": self.jobtype,
            "args": list(self.args),
            "created_at": format_time(time.time()),
        }
        optional = {
            "queue": self.queue,
            "at": _at(self.at),
            "retry": self.retry,
            "reserve_for": self.reserve_for,
            "priority": self.priority,
            "backtrace": self.backtrace,
            "custom": dict(self.custom) if self.custom is not None else None,
        }
        payload.update((key, value) for key, value in optional.items() if value is not None)
        return payload


def job_dict(job: Job | Mapping[str, Any]) -> dict[str, Any]:
    """Return the wire form of a :class:`Job` or of a mapping (``jid`` filled if missing)."""
    if isinstance(job, Job):
        return job.to_dict()
    payload = dict(job)
    if not payload.get("jid"):
        payload["jid"] = new_jid()
    if not payload.get("created_at"):
        payload["created_at"] = format_time(time.time())
    payload.setdefault("args", [])
    return payload
