"""Chains of jobs (Werk's chains extension): each runs once the one before it succeeded.

:func:`chain` builds a :class:`Chain`, the first job carrying the steps after it in
``custom.chain``; the server pushes each step in turn. A step built with
:meth:`Task.step <werk.client.tasks.Task.step>` (or marked with :func:`takes_result`) gets the
return value of the step before it as its first argument.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from werk.client.job import Job
from werk.client.pushed import Pushed, TaskClient, default_client

CHAIN_MAX_STEPS = 50
"""The most steps after the first that a chain may carry (the server's limit)."""


@dataclass(slots=True)
class Chain(Job):
    """A chain's first job, carrying the steps after it in ``custom.chain`` (Werk's chains
    extension; built by :func:`chain`). It is a :class:`Job`: :meth:`Client.push
    <werk.client.Client.push>`, ``push_bulk`` and :class:`~werk.client.AsyncClient` push it
    as one. :meth:`push` returns a :class:`Pushed` on the chain's last step.

    Attributes:
        last: the chain's last step (its jid was fixed when the chain was built).
    """

    last: Job | None = None

    def push(self, client: TaskClient | None = None) -> Pushed[Any]:
        """Push the chain (with ``client``, else :func:`default_client`) and return a handle
        on its last step: ``.result()`` waits for the value the last step returned, when it
        has ``result_ttl`` (Celery's ``chain(...).apply_async().get()``).

        Raises:
            CommandError: the server refused the chain (the message names the step).
        """
        (client or default_client()).push(self)
        last = self.last or self
        return Pushed(last.jid, last.jobtype, last.queue or "default", client)


def takes_result(job: Job) -> Job:
    """Return a copy of ``job`` that, as a step of a :func:`chain`, gets the return value of
    the step before it prepended to its ``args`` (``custom.chain_result``; Celery's ``.s()``
    as opposed to ``.si()``)."""
    return replace(job, custom={**(job.custom or {}), "chain_result": True})


def chain(*jobs: Job) -> Chain:
    """Chain jobs (Celery's ``chain``): the server pushes each one once the one before it
    succeeded; a failure waits for its retry, and a job that dies ends the chain.

    A step built with :meth:`Task.step` (or marked with :func:`takes_result`) gets the
    return value of the step before it as its first argument (Celery's ``.s()``); a step
    built with :meth:`Task.job` takes nothing (Celery's ``.si()``). Needs a Werk server: a
    Faktory server runs the first job only.

    Raises:
        ValueError: fewer than two jobs, more than 51, a step that carries a chain, a
            first job that takes a result (nothing runs before it), or one jid twice (the
            same ``Job`` given twice, say).
    """
    if not 2 <= len(jobs) <= CHAIN_MAX_STEPS + 1:
        raise ValueError(f"a chain takes 2 to {CHAIN_MAX_STEPS + 1} jobs, not {len(jobs)}")
    if (jobs[0].custom or {}).get("chain_result"):
        raise ValueError(
            "the first job of a chain takes the result of the step before it, and there is"
            " none: build it with .job(...), not .step(...)"
        )
    if len({job.jid for job in jobs}) < len(jobs):
        raise ValueError("a chain holds one jid twice: give each step a Job of its own")
    steps = []
    for index, job in enumerate(jobs):
        if isinstance(job, Chain) or "chain" in (job.custom or {}):
            raise ValueError(f"job {index} of the chain carries a chain itself: chains do not nest")
        if index:
            steps.append(job.to_dict())
    first = jobs[0]
    values = {f.name: getattr(first, f.name) for f in fields(Job)}
    values["custom"] = {**(first.custom or {}), "chain": steps}
    return Chain(**values, last=jobs[-1])
