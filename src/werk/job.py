"""The job payload: validation, defaults and timestamps, shared by server and client.

A job travels as a JSON object. The server keeps every field it was given (unknown ones
too) and fills the defaults of PROTOCOL.md §2: ``queue`` "default", ``retry`` 25,
``priority`` 5, ``created_at`` now. Times are RFC 3339 strings in UTC with up to
nanosecond precision, as Go's RFC3339Nano writes them.

Field types are Faktory's ``client.Job`` as Go decodes it (docs/protocol.md, "Job field
types"): a wrong type refuses the job, ``null`` means the field is not given. Werk's own
``priority`` is an integer 1..9.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import secrets
from datetime import UTC, datetime
from typing import Any, Final

from werk.errors import CommandError, JobTypeError
from werk.protocol.fields import Kind, is_int64, typed_payload

DEFAULT_QUEUE: Final = "default"
DEFAULT_RETRY: Final = 25
DEFAULT_PRIORITY: Final = 5
DEFAULT_RESERVE_FOR: Final = 1800
TEST_MIN_RESERVE_FOR_ENV: Final = "WERK_TEST_MIN_RESERVE_FOR"
"""For tests only: the server's environment may lower the 60 s minimum ``reserve_for``
(to 1 s at the least) so that reservation expiry can be tested in seconds. Never set it in
production: Faktory's minimum is 60 s and workers may rely on it."""


def _min_reserve_for() -> int:
    raw = os.environ.get(TEST_MIN_RESERVE_FOR_ENV, "")
    return max(1, int(raw)) if raw.strip().isdigit() else 60


MIN_RESERVE_FOR: Final = _min_reserve_for()
"""Faktory's minimum reservation, 60 s (see :data:`TEST_MIN_RESERVE_FOR_ENV`)."""
MAX_RESERVE_FOR: Final = 86400
MAX_RESULT_TTL: Final = 30 * 86400.0
"""The longest ``custom.result_ttl`` a job may ask for, in seconds (Werk's job results)."""
QUEUE_NAME: Final = re.compile(r"\A[a-zA-Z0-9._-]+\Z")
QUEUE_RULE: Final = "queue names must match \\A[a-zA-Z0-9._-]+\\z"
"""Faktory's rule for queue names, as its error says it (Go's ``\\z``); the server, cron
and ``werk worker -q`` all check :data:`QUEUE_NAME` and say this."""


def new_jid() -> str:
    """Return a new random job id (12 random bytes, URL-safe base64)."""
    return secrets.token_urlsafe(12)


def format_time(ts: float) -> str:
    """Format Unix seconds as RFC3339Nano in UTC, trailing zeros of the fraction trimmed."""
    whole = int(ts // 1)
    nanos = round((ts - whole) * 1e9)
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    base = _second(whole)
    if nanos == 0:
        return base + "Z"
    return f"{base}.{nanos:09d}".rstrip("0") + "Z"


@functools.lru_cache(maxsize=64)
def _second(whole: int) -> str:
    # Every PUSH stamps created_at with "now": format each second once, not every job.
    moment = datetime.fromtimestamp(whole, UTC)
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}"  # %Y does not pad year 1 to 0001


_FRACTION = re.compile(r"\.(\d+)")
RFC3339: Final = re.compile(
    r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})?\Z"
)
"""The shape of Go's RFC3339Nano (Faktory's ``at``); Werk also takes a time without an
offset as UTC (some clients send one), but never a bare date."""


OUT_OF_RANGE: Final = "outside the years 0001 to 9999 in UTC"
FIRST_TIME: Final = -62135596800.0
"""0001-01-01T00:00:00Z in Unix seconds: the first time Werk takes."""
LAST_TIME: Final = 253402300799.999
"""9999-12-31T23:59:59.999Z in Unix seconds: the last time Werk takes (a float this large
holds no finer fraction, and a later one would format as the year 10000)."""


def parse_time(text: str) -> float:
    """Parse an RFC 3339 timestamp (any offset, any fraction) into Unix seconds.

    A time without an offset is UTC. A bare date is refused, as Faktory refuses it, and so
    is a time whose offset carries it out of the years 0001 to 9999 in UTC
    (``9999-12-31T23:59:59-01:00``): no page, reply or store could show it.

    Raises:
        ValueError: the text is not an RFC 3339 timestamp, or lies outside those years.
    """
    value = text.strip()
    if not RFC3339.match(value):
        raise ValueError("not an RFC 3339 timestamp (like 2006-01-02T15:04:05Z)")
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    fraction = 0.0
    match = _FRACTION.search(value)
    if match is not None:
        digits = match.group(1)
        fraction = int(digits) / 10 ** len(digits)
        value = value[: match.start()] + value[match.end() :]
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(OUT_OF_RANGE) from None
    result = parsed.timestamp() + fraction
    if result > LAST_TIME:
        raise ValueError(OUT_OF_RANGE)
    return result


def clamp_reserve_for(value: int) -> int:
    """Return the reservation length for a job's ``reserve_for`` (0 means the default)."""
    if value <= 0:
        return DEFAULT_RESERVE_FOR
    return max(MIN_RESERVE_FOR, min(MAX_RESERVE_FOR, value))


def _int_field(job: dict[str, Any], name: str, default: int) -> int:
    value = job.get(name)
    if value is None:
        return default
    if not is_int64(value):
        raise JobTypeError(f"jobs must have an integer {name} parameter")
    result: int = value
    return result


_STRING_FIELDS: Final = ("created_at", "enqueued_at", "at")
FAILURE_FIELDS: dict[str, Kind] = {
    "retry_count": "int",
    "remaining": "int",
    "failed_at": "str",
    "next_at": "str",
    "message": "str",
    "errtype": "str",
    "backtrace": "str_list",
}
"""Faktory's ``client.Failure``: a client-made ``failure`` must have these types."""


def _check_optional(job: dict[str, Any]) -> None:
    for name in _STRING_FIELDS:
        value = job.get(name)
        if value is not None and not isinstance(value, str):
            raise JobTypeError(f"jobs must have a string {name} parameter")
    backtrace = job.get("backtrace")
    if backtrace is not None and not is_int64(backtrace):
        raise JobTypeError("jobs must have an integer backtrace parameter")
    failure = job.get("failure")
    if failure is not None and (
        not isinstance(failure, dict) or typed_payload(failure, FAILURE_FIELDS) is None
    ):
        raise JobTypeError("jobs must have a failure object of Faktory's shape")
    custom = job.get("custom")
    if custom is not None and not isinstance(custom, dict):
        raise JobTypeError("jobs must have an object as custom parameter")


FIELDS: Final = frozenset(
    {
        "jid",
        "queue",
        "jobtype",
        "args",
        "priority",
        "created_at",
        "enqueued_at",
        "at",
        "reserve_for",
        "retry",
        "backtrace",
        "failure",
        "custom",
    }
)
"""The job's own fields; any other top-level key is kept as it is."""


def _fold_keys(job: dict[str, Any]) -> None:
    # Go's decoder (so Faktory) matches keys regardless of case: "Queue" fills queue.
    for key in [k for k in job if k not in FIELDS and k.lower() in FIELDS]:
        job[key.lower()] = job.pop(key)


def _check_required(jid: Any, jobtype: Any, args: Any) -> None:
    # A wrong type is a JobTypeError (PUSHB then refuses all); the texts are Faktory's.
    if not isinstance(jid, str | None):
        raise JobTypeError("jobs must have a reasonable jid parameter")
    if not isinstance(jobtype, str | None):
        raise JobTypeError("jobs must have a jobtype parameter")
    if not isinstance(args, list | None):
        raise JobTypeError("jobs must have an args parameter")
    # Faktory counts bytes: three CJK characters make a valid jid. A NUL character is
    # refused (Werk's rule): no store's key or text column can carry it faithfully.
    if jid is None or (len(jid) < 8 and len(jid.encode()) < 8) or "\x00" in jid:
        raise CommandError("jobs must have a reasonable jid parameter")
    if not jobtype or "\x00" in jobtype:
        raise CommandError("jobs must have a jobtype parameter")
    if args is None:
        raise CommandError("jobs must have an args parameter")


def validate(job: Any, now: float) -> dict[str, Any]:
    """Check a pushed job and fill its defaults, in place; return it.

    Keys that name a job field in another case (``"Queue"``, ``"JID"``) fill that field,
    as Faktory's decoder does.

    Raises:
        CommandError: with Faktory's message for the first rule the job breaks.
    """
    if not isinstance(job, dict):
        raise JobTypeError("jobs must be JSON objects")
    _fold_keys(job)
    _check_required(job.get("jid"), job.get("jobtype"), job.get("args"))
    queue = job.get("queue")
    if queue is None or queue == "":
        job["queue"] = DEFAULT_QUEUE
    elif not isinstance(queue, str):
        raise JobTypeError("jobs must have a string queue parameter")
    job["retry"] = _int_field(job, "retry", DEFAULT_RETRY)
    reserve_for = _int_field(job, "reserve_for", 0)
    if reserve_for > MAX_RESERVE_FOR:
        raise CommandError("jobs cannot be reserved for more than one day")
    priority = _int_field(job, "priority", DEFAULT_PRIORITY)
    if not 1 <= priority <= 9:
        raise CommandError("jobs must have a priority between 1 and 9")
    job["priority"] = priority
    _check_optional(job)
    if not job.get("created_at"):
        job["created_at"] = format_time(now)
    return job


def check_later(job: dict[str, Any], now: float) -> dict[str, Any]:
    """Check a job kept to be pushed later (a batch callback, a chain step) as its push
    will, without changing it: a copy, given a jid when it has none, must pass
    :func:`validate` and have a valid queue name. Returns that validated copy (defaults
    filled). ``at`` is left to the caller (a batch callback's is dropped when it fires); the
    manager's ``check_push`` applies every rule of a PUSH.

    Raises:
        CommandError: with Faktory's message for the first rule the job breaks.
    """
    trial = copy.deepcopy(job)
    trial["jid"] = trial.get("jid") or new_jid()
    checked = validate(trial, now)
    # Its push will refuse such a queue: found only then, the job would never be pushed.
    check_queue_name(checked["queue"])
    return checked


def next_step(steps: list[Any], result: Any, now: float) -> dict[str, Any]:
    """Return the job that continues a chain (Werk's chains extension): ``steps[0]`` (a job
    object) with its jid or a fresh one, ``created_at`` now, the other steps as its
    ``custom.chain``, and ``result`` (the previous step's return value) prepended to its
    ``args`` when it asks with ``custom.chain_result``. The server and the inline client
    both continue chains with it."""
    step: dict[str, Any] = dict(steps[0])
    step["jid"] = step.get("jid") or new_jid()
    step["created_at"] = format_time(now)
    custom = dict(step.get("custom") or {})
    custom.pop("chain", None)
    if len(steps) > 1:
        custom["chain"] = steps[1:]
    if custom.get("chain_result") is True:
        step["args"] = [result, *(step.get("args") or [])]
    if custom:
        step["custom"] = custom
    return step


def scheduled_at(job: dict[str, Any], now: float) -> float | None:
    """Return when a job is due if its ``at`` lies in the future, else ``None``.

    Raises:
        CommandError: ``at`` is not an RFC 3339 timestamp.
    """
    at = job.get("at")
    if at is None or at == "":
        return None
    if not isinstance(at, str):
        raise JobTypeError("jobs must have a string at parameter")
    try:
        due = parse_time(at)
    except ValueError as exc:
        raise CommandError(f"invalid timestamp for 'at': \"{at}\": {exc}") from exc
    return due if due > now else None


def check(job: Any, now: float) -> tuple[dict[str, Any], float | None]:
    """Apply PUSH's own rules to a job (:func:`validate`, :func:`scheduled_at`, and the
    queue name, also for a scheduled job so that no invalid queue appears when it falls
    due); return it and when it is due (``None``: now).

    Raises:
        CommandError: with Faktory's message for the first rule the job breaks.
    """
    job = validate(job, now)
    due = scheduled_at(job, now)
    check_queue_name(job["queue"])
    return job, due


def check_queue_name(name: str) -> None:
    """Raise Faktory's error unless ``name`` is a valid queue name."""
    if not QUEUE_NAME.match(name):
        raise CommandError(f'cannot get "{name}" queue: {QUEUE_RULE}')
