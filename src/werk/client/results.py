"""Reading job results (Werk's extension): the state document, waits, and errors.

A job pushed with ``Job(..., result_ttl=seconds)`` (sent as ``custom.result_ttl``) has its
outcome kept by a Werk server; :meth:`werk.client.Client.job_state` and
:meth:`~werk.client.Client.result` read it with the ``RESULT`` command, waiting on the
server (never polling from here). A server wait is capped (:data:`MAX_WAIT`), so longer
waits are made of several RESULT calls. docs/protocol.md ("Job results") has the wire form.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from werk.errors import InvalidJSONError, WerkError
from werk.protocol import jsonwire

MAX_WAIT = 300.0
"""The longest one RESULT blocks on the server, in seconds (the server's cap)."""
RECONNECT_PAUSE = 0.5
"""Seconds a result wait pauses between rounds of reconnecting to an unreachable server."""
FINAL = frozenset({"succeeded", "failed", "dead", "unknown"})
"""States a wait ends on."""

RESULT_TOO_LARGE_ERRTYPE = "ResultTooLarge"
"""``errtype`` of a job whose return value the server refused as too large (``-TOOLARGE``)."""
RESULT_TOO_DEEP_ERRTYPE = "ResultTooDeep"
"""``errtype`` of a job whose return value nests deeper than the server takes in an ACK."""
RESULT_NOT_JSON_ERRTYPE = "ResultNotJSON"
"""``errtype`` of a job whose return value is not JSON (NaN, an infinity, an object) or
holds a string UTF-8 cannot encode (a lone surrogate)."""
RESULT_REFUSED_ERRTYPE = "ResultRefused"
"""``errtype`` of a job whose result ACK the server refused for another reason."""
INCURABLE = frozenset({RESULT_TOO_LARGE_ERRTYPE, RESULT_TOO_DEEP_ERRTYPE, RESULT_NOT_JSON_ERRTYPE})
"""Refusals a retry cannot cure (the same function returns the same value): dead at once."""


class ResultRefusedError(WerkError):
    """A job's return value that a Werk server refuses (or would refuse) in its ACK; the
    worker FAILs the job with it instead (Werk's results extension).

    A value too large, too deep or not JSON would be the same on every run, so the job goes
    to the dead set at once (FAIL's ``dead``) instead of being retried for weeks; it can be
    retried from there by hand once the function is fixed. Another refusal follows the
    job's ``retry``.

    Attributes:
        errtype: the FAIL's errtype, by kind: :data:`RESULT_TOO_DEEP_ERRTYPE`,
            :data:`RESULT_NOT_JSON_ERRTYPE`, :data:`RESULT_TOO_LARGE_ERRTYPE` or
            :data:`RESULT_REFUSED_ERRTYPE`.
        fail_fields: Werk's FAIL fields: ``{"dead": True}`` for the kinds a retry cannot
            cure.
    """

    def __init__(self, errtype: str, message: str) -> None:
        super().__init__(message)
        self.errtype = errtype
        self.fail_fields: dict[str, Any] = {"dead": True} if errtype in INCURABLE else {}


def encode_result(value: Any) -> bytes:
    """Return ``value`` as the strict compact JSON an ACK carries it in, once checked as
    the server checks it (the size limit is the server's own setting, checked there).

    The ACK's ``{"jid":...,"result":...}`` object is one level of the server's
    :data:`~werk.protocol.jsonwire.MAX_DEPTH`, so the value may nest one level less.

    Raises:
        ResultRefusedError: ``ResultTooDeep`` (nested too deeply) or ``ResultNotJSON``
            (NaN, an infinity, a circular or non-JSON value, a string with a lone
            surrogate, which UTF-8 cannot encode: the server would store other text).
    """
    limit = jsonwire.MAX_DEPTH - 1
    too_deep = ResultRefusedError(
        RESULT_TOO_DEEP_ERRTYPE,
        f"the job's return value nests deeper than {limit} levels; a server takes at most"
        f" {jsonwire.MAX_DEPTH} in an ACK, whose own object is one",
    )
    try:
        data = jsonwire.dumps(value, refuse_surrogates=True)
    except RecursionError:
        raise too_deep from None
    except InvalidJSONError as exc:
        raise ResultRefusedError(
            RESULT_NOT_JSON_ERRTYPE, f"the job's return value cannot be stored as JSON: {exc}"
        ) from None
    # Cheap for most values: fewer brackets than the limit cannot nest deeper.
    if data.count(b"[") + data.count(b"{") > limit and jsonwire.depth(value) > limit:
        raise too_deep
    return data


class JobFailedError(WerkError):
    """The job failed for good (``failed``: discarded after a failure, or ``dead``).

    Attributes:
        jid: the job.
        state: ``"failed"`` or ``"dead"``.
        errtype: the error type its worker reported (``Expired`` for an expired job).
        error_message: the error's message.
        backtrace: the reported backtrace lines.
    """

    def __init__(self, jid: str, state: str, error: dict[str, Any]) -> None:
        self.jid = jid
        self.state = state
        self.errtype = str(error.get("errtype", ""))
        self.error_message = str(error.get("message", ""))
        self.backtrace = [str(line) for line in error.get("backtrace") or []]
        super().__init__(f"job {jid} {state}: {self.errtype}: {self.error_message}")


class ResultTimeoutError(WerkError, TimeoutError):
    """The job had not ended when the wait ran out."""


class UnknownJobError(WerkError, LookupError):
    """The server knows nothing of the job: it never asked for a result, its result
    expired, or the jid is wrong."""


@dataclass(frozen=True, slots=True)
class JobState:
    """What a Werk server knows of a job (the RESULT document).

    Attributes:
        jid: the job id.
        state: ``queued``, ``scheduled``, ``working``, ``retrying``, ``dead``,
            ``succeeded``, ``failed`` or ``unknown``.
        result: the value the job's function returned (``succeeded`` only).
        error: the last error (``errtype``, ``message``, ``backtrace``) of a failed,
            dead or retrying job.
        queue: the job's queue, when known.
        jobtype: the job's type, when known.
        enqueued_at: RFC 3339 time the job was last enqueued (finished jobs).
        started_at: RFC 3339 time its last run started (working and finished jobs).
        finished_at: RFC 3339 time it ended (finished jobs).
        args: the job's arguments as pushed (``[]`` when unknown).
        custom: the job's ``custom`` object as pushed (``{}`` when unknown).
        wid: the worker process that ran it (working and finished jobs).
        doc: the whole document as the server sent it.
    """

    jid: str
    state: str
    result: Any = None
    error: dict[str, Any] | None = None
    queue: str | None = None
    jobtype: str | None = None
    enqueued_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    args: list[Any] = field(default_factory=list)
    custom: dict[str, Any] = field(default_factory=dict)
    wid: str | None = None
    doc: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> JobState:
        """Build the state from a RESULT reply."""
        error = doc.get("error")
        return cls(
            jid=str(doc.get("jid", "")),
            state=str(doc.get("state", "unknown")),
            result=doc.get("result"),
            error=error if isinstance(error, dict) else None,
            queue=doc.get("queue"),
            jobtype=doc.get("jobtype"),
            enqueued_at=doc.get("enqueued_at"),
            started_at=doc.get("started_at"),
            finished_at=doc.get("finished_at"),
            args=list(doc.get("args") or []),
            custom=dict(doc.get("custom") or {}),
            wid=doc.get("wid"),
            doc=doc,
        )

    @property
    def finished(self) -> bool:
        """Whether the job ended (succeeded, failed, dead) or is unknown."""
        return self.state in FINAL

    @property
    def gone_unrun(self) -> bool:
        """Whether the state is what a job deleted before it ran leaves: ``unknown`` (a job
        without ``result_ttl``) or ``failed`` with errtype ``Deleted`` (one with it)."""
        deleted = self.state == "failed" and (self.error or {}).get("errtype") == "Deleted"
        return deleted or self.state == "unknown"

    def value(self) -> Any:
        """Return the job's result.

        Raises:
            JobFailedError: the job failed or is dead.
            UnknownJobError: the server does not know the job.
            ResultTimeoutError: the job has not ended yet.
        """
        if self.state == "succeeded":
            return self.result
        if self.state in ("failed", "dead"):
            raise JobFailedError(self.jid, self.state, self.error or {})
        if self.state == "unknown":
            raise UnknownJobError(
                f"no result known for job {self.jid}: results are kept only for jobs pushed"
                " with result_ttl (Job(..., result_ttl=seconds) or @task(result_ttl=seconds)),"
                " for result_ttl seconds after they end; this one was pushed without it,"
                " its result expired, or the jid is wrong"
            )
        raise ResultTimeoutError(f"job {self.jid} is still {self.state}")


class Deadline:
    """Splits a wait of ``timeout`` seconds (``None``: no limit) into server waits, and
    decides whether a wait outlasts a server outage (see :meth:`reconnect_pause`)."""

    def __init__(self, timeout: float | None) -> None:
        limit = math.inf if timeout is None else max(0.0, timeout)
        self._end = time.monotonic() + limit
        self._unlimited = timeout is None
        self.reached = False
        """Whether a RESULT of this wait got its reply (the server was reached)."""

    def next_wait(self) -> float:
        """Return how long the next RESULT may block (0: just read the state)."""
        return max(0.0, min(MAX_WAIT, self._end - time.monotonic()))

    def over(self) -> bool:
        """Whether the wait has run out."""
        return time.monotonic() >= self._end

    def reconnect_pause(self) -> float | None:
        """After the server could not be reached (a restart, say): the seconds to pause
        before asking again, or ``None`` to give up and raise.

        A wait with a ``timeout`` keeps reconnecting until its deadline (one last round of
        the client's ``connect_retries`` may run past it). One with no limit keeps on only
        once this wait reached the server: a wrong address still fails after the client's
        connect retries instead of hanging.
        """
        if self.over() or (self._unlimited and not self.reached):
            return None
        return min(RECONNECT_PAUSE, self._end - time.monotonic())
