"""Retries-exhausted hooks: code that runs once when a job fails for the last time.

The worker's answer to Sidekiq's ``sidekiq_retries_exhausted``, Dramatiq's
``on_retry_exhausted`` and Celery's ``on_failure``: a task's ``on_retries_exhausted`` and
every middleware's :meth:`~werk.client.middleware.Middleware.on_retries_exhausted` are called
with the job's payload (as fetched) and the exception of its last run, once the server has
accepted the FAIL after which the job never runs again by itself: the one that sends it to
the dead set or discards it. Whether a FAIL is that one is :func:`werk.fate.failure_fate`,
the rule the server applies to it.

A hook that raises is logged on the ``werk.worker`` logger and changes nothing else: the
job has already failed for good, and the worker carries on.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from werk.client.joberrors import is_job_failure
from werk.client.proto import Call
from werk.client.threads import JobThreads
from werk.fate import FINAL, failure_fate

log = logging.getLogger("werk.worker")

ExhaustedHook = Callable[[dict[str, Any], BaseException], Any]
"""A retries-exhausted hook: ``hook(job, exc)``, a plain function (run on one of the
worker's job threads) or an ``async def`` (run on its event loop); what it returns is
ignored."""


@dataclass(frozen=True, slots=True)
class LastFail(Call[None]):
    """A FAIL after which the job is never run again by itself, and the hooks to call once
    the server accepted it.

    Attributes:
        job: the payload as fetched.
        error: the exception the FAIL reports.
        fate: ``"dead"`` (the dead set) or ``"discard"`` (gone).
        hooks: the task's hook first, then the middleware's, in their order.
    """

    job: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None
    fate: str = ""
    hooks: tuple[ExhaustedHook, ...] = ()


def last_fail(
    call: Call[None],
    job: dict[str, Any],
    error: BaseException,
    errtype: str,
    dead: bool,
    hooks: Sequence[ExhaustedHook],
) -> Call[None]:
    """Return ``call`` (the FAIL reporting ``error`` with ``errtype`` and Werk's ``dead``)
    as a :class:`LastFail` when it ends the job's retries and there are hooks to call, else
    unchanged."""
    if not hooks:
        return call
    fate = failure_fate(job, errtype, dead=dead)
    if fate not in FINAL:
        return call
    return LastFail(call.data, call.parse, call.wait, job, error, fate, tuple(hooks))


async def call_hooks(report: LastFail, threads: JobThreads | None) -> None:
    """Call ``report``'s hooks one after the other, logging (never raising) their errors.

    Plain hooks run on ``threads`` (``None``: the event loop's default executor), so a slow
    alert does not stall the event loop.
    """
    job, error = report.job, report.error
    assert error is not None  # a LastFail always reports an exception
    jid, jobtype = job.get("jid"), job.get("jobtype", "")
    extra = {"jid": jid, "jobtype": jobtype}
    log.info(
        "job %s %s: retries exhausted (%s); calling %d hook(s)",
        jid,
        jobtype,
        "dead set" if report.fate == "dead" else "discarded",
        len(report.hooks),
        extra=extra,
    )
    for hook in report.hooks:
        try:
            if inspect.iscoroutinefunction(hook):
                await hook(job, error)
            elif threads is not None:
                await threads.run(hook, job, error)
            else:
                await asyncio.get_running_loop().run_in_executor(None, hook, job, error)
        except BaseException as exc:  # even SystemExit: the worker carries on
            if not is_job_failure(exc):
                raise
            log.exception(
                "job %s %s: retries-exhausted hook %s raised (the job stays failed)",
                jid,
                jobtype,
                getattr(hook, "__qualname__", repr(hook)),
                extra=extra,
            )
