"""Reading the retry set, the scheduled set and the dead set (or a queue, or the jobs
running now) from Python.

:class:`~werk.client.Client` and :class:`~werk.client.AsyncClient` send Werk's ``JOBS``
command (docs/protocol.md) with :func:`jobs_call` and turn each reply into a
:class:`JobsPage` of :class:`SetEntry`; :func:`mutate_calls` turns listed entries into the
MUTATE commands that requeue, discard or kill them by jid. Both clients share this module,
so only the waiting differs between them. A Faktory server answers ``JOBS`` with
``-ERR unknown command JOBS`` (raised as :class:`~werk.errors.CommandError`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict, Unpack

from werk.client.proto import Call, ClientProtocol, _json_object
from werk.job import parse_time
from werk.protocol import commands as verbs
from werk.protocol.commands import compact_json, encode_command

SetName = Literal["retries", "scheduled", "dead"]
"""The sets MUTATE acts on: the retry set, the scheduled set and the dead set."""
Target = Literal["retries", "scheduled", "dead", "queue", "working"]
"""What JOBS lists: a set, a queue (with ``queue=``) or ``working``, the reservations (the
jobs workers are running now)."""
PAGE_SIZE = 100
"""Entries per JOBS page by default (the server takes 1..1000)."""
MAX_MUTATE_JIDS = 10_000
"""The most jids one MUTATE filter may list (the server's limit): longer lists are sent in
several MUTATE commands."""
_CALLS = ClientProtocol()


class Where(TypedDict, total=False):
    """What to list besides the target: ``queue`` names the queue of target ``"queue"``
    (for ``"working"``: only jobs fetched from that queue); ``jids``, ``regexp`` (a glob
    over the job's JSON) and ``jobtype`` are MUTATE's filter for a set or ``"working"``,
    and all given must hold (none: every entry)."""

    queue: str
    jids: Sequence[str]
    regexp: str
    jobtype: str


@dataclass(frozen=True, slots=True)
class SetEntry:
    """One job listed from a set or a queue.

    Attributes:
        target: where it was listed: ``retries``, ``scheduled``, ``dead``, ``queue`` or
            ``working``.
        jid: the job id.
        at: when it is due (the scheduled set; the retry set: its next try), when it died
            (the dead set), when it was enqueued (a queue) or when a worker reserved it
            (``working``); an aware UTC datetime.
        job: the job's JSON object as the server keeps it (``jobtype``, ``args``,
            ``queue``, ``failure`` ...; a running job as its worker received it, with
            ``enqueued_at``); ``{}`` for a stored body that is not JSON.
        reserved_at: ``working`` only (else ``None``): when the worker fetched the job.
        expires_at: ``working`` only: when the reservation runs out unless the job is
            acknowledged, failed or extended (then the job goes back to be retried).
        wid: ``working`` only: the worker process holding the job (``""`` for a
            connection that said HELLO without a wid).
    """

    target: str
    jid: str
    at: datetime
    job: dict[str, Any]
    reserved_at: datetime | None = None
    expires_at: datetime | None = None
    wid: str | None = None

    @property
    def jobtype(self) -> str:
        """The job's jobtype (``""`` if the job has none)."""
        return str(self.job.get("jobtype") or "")

    @property
    def queue(self) -> str:
        """The queue the job goes back to when requeued."""
        return str(self.job.get("queue") or "default")

    @property
    def args(self) -> list[Any]:
        """The job's positional arguments."""
        args = self.job.get("args")
        return args if isinstance(args, list) else []

    @property
    def failure(self) -> dict[str, Any] | None:
        """The job's last failure (``message``, ``errtype``, ``retry_count`` ...), if any."""
        failure = self.job.get("failure")
        return failure if isinstance(failure, dict) else None


def _time(text: Any) -> datetime:
    return datetime.fromtimestamp(parse_time(text), UTC)


@dataclass(frozen=True, slots=True)
class JobsPage:
    """One page of a set or a queue, as JOBS answered it.

    Attributes:
        target: ``retries``, ``scheduled``, ``dead``, ``queue`` or ``working``.
        entries: the listed jobs, in the web UI's order (``working``: soonest
            expiry first).
        total: how many entries match (counted when the page was read).
        offset: the offset this page starts at.
        next_offset: where the next page starts, or ``None`` when this one ends the
            listing.
    """

    target: str
    entries: list[SetEntry]
    total: int
    offset: int
    next_offset: int | None

    @property
    def jids(self) -> list[str]:
        """The jids of the listed entries, in order."""
        return [entry.jid for entry in self.entries]

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> JobsPage:
        """Build a page from a JOBS reply."""
        target = str(doc["target"])
        entries = [
            SetEntry(
                target=target,
                jid=str(item["jid"]),
                at=_time(item["at"]),
                job=item["job"] if isinstance(item.get("job"), dict) else {},
                reserved_at=_time(item["reserved_at"]) if "reserved_at" in item else None,
                expires_at=_time(item["expires_at"]) if "expires_at" in item else None,
                wid=str(item["wid"]) if "wid" in item else None,
            )
            for item in doc["jobs"]
        ]
        next_offset = doc.get("next_offset")
        return cls(target, entries, int(doc["total"]), int(doc["offset"]), next_offset)


def jobs_call(
    target: Target, *, offset: int = 0, limit: int = PAGE_SIZE, **where: Unpack[Where]
) -> Call[JobsPage]:
    """Return the ``JOBS`` call for one page: the filter is sent only when a criterion is
    given, so no criterion lists the whole set (the server refuses an empty filter).

    Raises:
        ValueError: ``jids`` given as one string (it would be read as its characters).
    """
    if isinstance(where.get("jids"), str):
        raise ValueError("jids must be a list of jids, not one string")
    payload: dict[str, Any] = {"target": target, "offset": offset, "limit": limit}
    if "queue" in where:
        payload["queue"] = where["queue"]
    flt = {key: value for key, value in where.items() if key != "queue"}
    if "jids" in flt:
        flt["jids"] = list(where["jids"])
    if flt:
        payload["filter"] = flt
    data = encode_command(verbs.JOBS, compact_json(payload))
    return Call(data, lambda reply: JobsPage.from_doc(_json_object(reply)))


def mutate_calls(
    cmd: Literal["requeue", "discard", "kill"],
    target: SetName,
    jobs: Iterable[SetEntry | str],
) -> list[Call[None]]:
    """Return the MUTATE calls that apply ``cmd`` to the listed jobs of ``target`` by jid,
    at most :data:`MAX_MUTATE_JIDS` jids each (none for no jobs). A jid no longer in the
    set is skipped by the server.

    Raises:
        ValueError: an entry listed from another target, or ``target`` is not a set.
    """
    if target not in ("retries", "scheduled", "dead"):
        raise ValueError(f"MUTATE acts on retries, scheduled or dead, not {target!r}")
    jids: list[str] = []
    for job in jobs:
        if isinstance(job, SetEntry):
            if job.target != target:
                raise ValueError(f"job {job.jid} was listed from {job.target}, not {target}")
            jids.append(job.jid)
        else:
            jids.append(job)
    return [
        _CALLS.mutate(cmd, target, {"jids": jids[start : start + MAX_MUTATE_JIDS]})
        for start in range(0, len(jids), MAX_MUTATE_JIDS)
    ]
