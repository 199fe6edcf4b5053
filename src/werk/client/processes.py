"""Listing the worker processes from Python (Werk's ``PROCESSES``; Sidekiq's ``ProcessSet``).

:class:`~werk.client.Client` and :class:`~werk.client.AsyncClient` send ``PROCESSES``
(docs/protocol.md) with :func:`processes_call` and turn the reply into
:class:`ProcessInfo` values. Read only: quiet or stop a process from the web UI's Busy
page (or by signalling it). A Faktory server answers ``-ERR unknown command PROCESSES``
(raised as :class:`~werk.errors.CommandError`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from werk.client.proto import Call, _json_object
from werk.errors import ProtocolError
from werk.job import parse_time
from werk.protocol import commands as verbs
from werk.protocol.commands import encode_command


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """One worker process as the server knows it (what its HELLO and BEATs said).

    Attributes:
        wid: the process's worker id.
        hostname: its host, as sent in HELLO.
        pid: its process id, as sent in HELLO.
        labels: its labels, as sent in HELLO.
        state: ``""`` (running), ``"quiet"`` (fetches no more jobs) or ``"terminate"``
            (asked to stop); it only moves forward.
        busy: how many jobs it holds now (reservations).
        busy_capped: ``True`` when the server counted only the first 1000 reservations
            (then ``busy`` may be short).
        started_at: when it said its first HELLO; an aware UTC datetime.
        last_beat: its last heartbeat (or HELLO); an aware UTC datetime. A process silent
            for 60 s is forgotten.
        rss_kb: its memory as its last BEAT said (Werk's extension; 0 if never said).
        connections: its connections open on the servers sharing the store.
    """

    wid: str
    hostname: str
    pid: int
    labels: list[str]
    state: str
    busy: int
    busy_capped: bool
    started_at: datetime
    last_beat: datetime
    rss_kb: int
    connections: int

    @property
    def quiet(self) -> bool:
        """Whether the process fetches no more jobs (quiet or stopping; Sidekiq's
        ``quiet?``)."""
        return self.state in ("quiet", "terminate")

    @property
    def stopping(self) -> bool:
        """Whether the process was asked to stop (Sidekiq's ``stopping?``)."""
        return self.state == "terminate"

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ProcessInfo:
        """Build a process from one entry of a PROCESSES reply."""
        return cls(
            wid=str(doc["wid"]),
            hostname=str(doc.get("hostname") or ""),
            pid=int(doc.get("pid") or 0),
            labels=[str(label) for label in doc.get("labels") or []],
            state=str(doc.get("state") or ""),
            busy=int(doc.get("busy") or 0),
            busy_capped=bool(doc.get("busy_capped")),
            started_at=datetime.fromtimestamp(parse_time(doc["started_at"]), UTC),
            last_beat=datetime.fromtimestamp(parse_time(doc["last_beat"]), UTC),
            rss_kb=int(doc.get("rss_kb") or 0),
            connections=int(doc.get("connections") or 0),
        )


def _processes(reply: Any) -> list[ProcessInfo]:
    listed = _json_object(reply).get("processes")
    if not isinstance(listed, list):
        raise ProtocolError(f"expected a list of processes, got {listed!r}")
    return [ProcessInfo.from_doc(doc) for doc in listed]


def processes_call() -> Call[list[ProcessInfo]]:
    """Return the ``PROCESSES`` call: every worker process, the most recently started
    first."""
    return Call(encode_command(verbs.PROCESSES), _processes)
