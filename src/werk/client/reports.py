"""The commands that report a job to the server: its ACK, or its FAIL.

A job that returned is ACKed, with its return value when the server keeps it
(:func:`wants_result`: a result or the next step of a chain); one that raised is FAILed
with the exception's errtype, message and trimmed backtrace, and Werk's ``dead`` and
``retry_in`` fields when asked for; one still unfinished when its worker stops is handed
back (:func:`shutdown_call`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Final

from werk.client.client import CALLS
from werk.client.joberrors import attribute, describe
from werk.client.proto import Call
from werk.client.results import encode_result
from werk.fate import RATE_LIMITED, WORKER_SHUTDOWN

DEFAULT_BACKTRACE = 30
"""Backtrace lines reported when the job does not ask for a number (``backtrace`` 0/unset)."""
SHUTDOWN_ERRTYPE: Final = WORKER_SHUTDOWN
"""``errtype`` of jobs handed back to the server because the worker stopped: a Werk server
puts them back in their queue at once without using a retry (Faktory: an ordinary failure)."""
RATE_LIMITED_ERRTYPE: Final = RATE_LIMITED
"""The ``errtype`` a worker sends in FAIL for :class:`werk.client.limits.RateLimited`."""

log = logging.getLogger("werk.worker")


def backtrace_lines(exc: BaseException, limit: int) -> list[str]:
    """Return the innermost ``limit`` frames of ``exc``, innermost first, as
    ``file:line:in `func'`` lines, read from the frames alone (no source file is opened,
    nothing of the exception's own code runs)."""
    lines: list[str] = []
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        lines.append(f"{code.co_filename}:{tb.tb_lineno}:in `{code.co_name}'")
        tb = tb.tb_next
    return lines[-limit:][::-1] if limit > 0 else []


def fail_call(
    job: dict[str, Any],
    exc: BaseException,
    errtype: str | None = None,
    fields: dict[str, Any] | None = None,
) -> Call[None]:
    """Build the FAIL reporting ``exc`` for ``job``, trimmed to the job's ``backtrace``.

    The errtype is the exception's class name, unless the exception has a string
    ``errtype`` attribute (as :class:`werk.client.limits.RateLimited` does); the message
    is :func:`~werk.client.joberrors.describe`'s, which never raises. Werk's
    ``dead`` and ``retry_in`` fields are ``fields``
    (:meth:`~werk.client.runner.Runner.fail_fields`), else those of a
    :class:`~werk.client.failures.NoRetry` or :class:`~werk.client.failures.RetryIn`.
    """
    wanted = job.get("backtrace")
    limit = wanted if isinstance(wanted, int) and wanted > 0 else DEFAULT_BACKTRACE
    extra = asked_fields(exc) if fields is None else fields
    retry_in = extra.get("retry_in")
    return CALLS.fail(
        str(job.get("jid", "")),
        errtype or reported_errtype(exc),
        describe(exc),
        backtrace_lines(exc, limit),
        retry_in=retry_in if type(retry_in) is int else None,
        dead=bool(extra.get("dead")),
    )


def reported_errtype(exc: BaseException) -> str:
    """The errtype a FAIL reports for ``exc``: its string ``errtype`` attribute when it has
    one (an exception may name its own), else its class name."""
    declared = attribute(exc, "errtype")
    return declared if isinstance(declared, str) and declared else type(exc).__name__


def asked_fields(exc: BaseException) -> dict[str, Any]:
    """Werk's FAIL fields an exception asks for (:mod:`werk.client.failures`)."""
    fields = attribute(exc, "fail_fields")
    return fields if isinstance(fields, dict) else {}


def wants_result(job: dict[str, Any]) -> bool:
    """Whether the server wants the job's return value on ACK: the job asked it to keep
    its result (``custom.result_ttl``), or the next step of its chain takes it
    (``custom.chain[0].custom.chain_result``, Werk's chains extension)."""
    custom = job.get("custom")
    if not isinstance(custom, dict):
        return False
    if custom.get("result_ttl") is not None:
        return True
    steps = custom.get("chain")
    step = steps[0] if isinstance(steps, list) and steps else None
    then = step.get("custom") if isinstance(step, dict) else None
    return isinstance(then, dict) and then.get("chain_result") is True


@dataclass(frozen=True, slots=True)
class ResultAck(Call[None]):
    """The ACK of a job that carries its return value (Werk's results extension).

    Whether the job is done is the server's say (it may refuse the result as too large),
    so the job's "done" line is logged only once the server accepts it: :meth:`answered`,
    called as soon as the ACK's own reply is read.
    """

    jid: str = ""
    jobtype: str = ""
    elapsed: float = 0.0
    job: dict[str, Any] = field(default_factory=dict)
    """The payload as fetched (for the FAIL sent instead if the server refuses the result)."""

    def answered(self, outcome: Any) -> None:
        """Log the job's "done" line if the server accepted the ACK (answered ``None``);
        a refusal is the processor's to handle (it may FAIL the job instead)."""
        if outcome is None:
            self.log_done()

    def log_done(self) -> None:
        """Log the job's success, as :meth:`~werk.client.runner.Runner.run` does for an ACK
        without result."""
        if log.isEnabledFor(logging.INFO):
            extra = {"jid": self.jid, "jobtype": self.jobtype}
            log.info("job %s %s: done in %.3fs", self.jid, self.jobtype, self.elapsed, extra=extra)


def result_ack(job: dict[str, Any], value: Any, elapsed: float) -> ResultAck:
    """Build the ACK of a job that returned ``value`` and asked for its result.

    Raises:
        ResultRefusedError: the server would refuse the value (too deep, not JSON); the
            job fails with it instead (:meth:`~werk.client.runner.Runner.result_refused`).
    """
    jid = job["jid"]
    call = CALLS.ack_encoded(jid, encode_result(value), reserved=True)
    jobtype = str(job.get("jobtype", ""))
    return ResultAck(call.data, call.parse, call.wait, jid, jobtype, elapsed, job)


def crash_call(job: dict[str, Any], exc: BaseException) -> Call[None]:
    """Build the FAIL of ``job`` when the worker failed while running or reporting it (a
    bug in the worker): an ordinary failure with the error's class name as errtype, so the
    job uses a retry as for any exception (and a job that keeps breaking its worker ends in
    the dead set instead of running forever)."""
    return CALLS.fail(
        str(job.get("jid", "")),
        type(exc).__name__,
        f"the worker failed while running or reporting this job: {describe(exc)}",
        backtrace_lines(exc, DEFAULT_BACKTRACE),
    )


def shutdown_call(job: dict[str, Any], reason: str) -> Call[None]:
    """Build the FAIL that hands ``job`` back to the server so that it runs again."""
    return CALLS.fail(str(job.get("jid", "")), SHUTDOWN_ERRTYPE, reason)
