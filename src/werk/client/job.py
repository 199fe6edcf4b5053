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

from werk.job import QUEUE_RULE, format_time, new_jid

LATEST_AT = 253402300799.0
"""9999-12-31T23:59:59Z in Unix seconds: the latest ``at`` RFC 3339 can write."""


def _at(value: datetime | float | str | None) -> str | None:
    """Return ``at`` as RFC 3339 text.

    Raises:
        ValueError: a naive ``datetime``, or a number that is not Unix seconds from 1970
            to 9999 (a time in milliseconds, say).
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("'at' must be an aware datetime (give it a tzinfo)")
        return format_time(value.timestamp())
    seconds = float(value)
    if not 0.0 <= seconds <= LATEST_AT:
        hint = " (milliseconds? divide by 1000)" if LATEST_AT < seconds < 1e15 else ""
        raise ValueError(f"'at' must be Unix seconds from 1970 to 9999, not {value!r}{hint}")
    return format_time(seconds)


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
        timeout: seconds the worker lets the job run before it FAILs it with errtype
            ``JobTimeout`` (a Werk client extension, sent as ``custom.timeout``).
        result_ttl: keep the job's outcome and its function's return value this many
            seconds after it ends (Werk's results extension, sent as
            ``custom.result_ttl``); read it with :meth:`werk.client.Client.result`.
        unique_for: refuse an equal job (same jobtype, args and queue) for this many
            seconds while this one waits or runs (Faktory Enterprise's unique jobs, sent
            as ``custom.unique_for``; a refused push raises ``NotUniqueError``).
        unique_until: ``"success"`` (the default) or ``"start"``: when the uniqueness
            lock ends (``custom.unique_until``).
        expires_in: drop the job, unrun, if it still waits this many seconds after the
            push (Faktory Enterprise's expiring jobs, ``custom.expires_in``).
        track: record the job's state and progress for ``Client.track_get`` (Faktory
            Enterprise's tracking, ``custom.track``).

    Raises:
        TypeError: ``args`` is not a list or a tuple (a string would become one argument
            per character).
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
    timeout: float | None = None
    result_ttl: float | None = None
    unique_for: float | None = None
    unique_until: str | None = None
    expires_in: float | None = None
    track: bool = False

    def __post_init__(self) -> None:
        check_args(self.args)
        if self.queue == "":  # a server would push it to "default" without a word
            raise ValueError(f"queue name '': {QUEUE_RULE} (leave queue unset for 'default')")

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
            "custom": self._custom(),
        }
        payload.update((key, value) for key, value in optional.items() if value is not None)
        return payload

    def _custom(self) -> dict[str, Any] | None:
        extra = {
            "timeout": self.timeout,
            "result_ttl": self.result_ttl,
            "unique_for": self.unique_for,
            "unique_until": self.unique_until,
            "expires_in": self.expires_in,
            "track": 1 if self.track else None,
        }
        extra = {key: value for key, value in extra.items() if value is not None}
        if not extra:
            return dict(self.custom) if self.custom is not None else None
        return {**(self.custom or {}), **extra}


def check_args(args: object) -> None:
    """Refuse job arguments that are not a list or a tuple.

    Raises:
        TypeError: ``args`` is a string, a mapping or anything else but a list or a tuple.
    """
    if not isinstance(args, list | tuple):
        raise TypeError(f"job args must be a list or a tuple, not {type(args).__name__}")


def job_dict(job: Job | Mapping[str, Any]) -> dict[str, Any]:
    """Return the wire form of a :class:`Job` or of a mapping (``jid`` filled if missing)."""
    if isinstance(job, Job):
        return job.to_dict()
    payload = dict(job)
    check_args(payload.get("args", []))
    if not payload.get("jid"):
        payload["jid"] = new_jid()
    if not payload.get("created_at"):
        payload["created_at"] = format_time(time.time())
    payload.setdefault("args", [])
    return payload


CALLBACKS = ("success", "complete")
"""The keys of a batch whose values are job payloads (Faktory Enterprise batches)."""


def batch_dict(batch: Mapping[str, Any]) -> dict[str, Any]:
    """Return a batch's wire form with its callback jobs (:class:`Job` or mappings)
    turned into payloads."""
    payload = dict(batch)
    for key in CALLBACKS:
        if payload.get(key) is not None:
            payload[key] = job_dict(payload[key])
    return payload
