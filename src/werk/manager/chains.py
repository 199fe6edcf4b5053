"""Job chains (a Werk extension, Celery's ``chain``): the next steps a job carries in
``custom.chain``, pushed by the server when it succeeds.

A job with ``custom.chain = [step, ...]`` (1 to :data:`MAX_STEPS` job objects, each checked
at PUSH by every rule its own push applies: the manager's ``check_push``) continues, when
it is acknowledged, with ``step[0]`` pushed through the manager's own push path (so unique
jobs, batches, results and throttles apply), with a fresh jid unless it has one,
``created_at`` now, and ``custom.chain`` the steps left.
A step whose own ``custom.chain_result`` is ``true`` gets the ACK's ``result`` (or ``null``)
prepended to its ``args``. A failure continues nothing: a retried job continues its chain
when it succeeds; a job that dies or is discarded ends it. A step with a jid and
``custom.result_ttl`` has its ``pending`` result record from the chain's push on, so its
result can be waited for at once. docs/protocol.md ("Job chains") is the wire reference.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from werk.errors import CommandError
from werk.job import check_later, next_step
from werk.manager.middleware import Ending, Host, Middleware, Pusher
from werk.manager.results import Results
from werk.protocol import jsonwire
from werk.storage.base import Entry, Placement, Reservation

log = logging.getLogger("werk.chains")

MAX_STEPS = 50
"""The most steps one ``custom.chain`` may hold."""
MARKER = b'"chain"'
"""Jobs whose body lacks this byte string carry no chain (the cheap check at ACK)."""


def _steps(job: dict[str, Any]) -> list[Any]:
    """Return a job's chain steps (``[]`` without a chain); refuse a malformed list."""
    custom = job.get("custom")
    steps = custom.get("chain") if isinstance(custom, dict) else None
    if steps is None:
        return []
    if not isinstance(steps, list):
        raise CommandError("custom.chain must be a list of jobs")
    if not 1 <= len(steps) <= MAX_STEPS:
        raise CommandError(f"custom.chain must hold 1 to {MAX_STEPS} jobs, not {len(steps)}")
    return steps


def _check_step(step: Any, now: float) -> dict[str, Any]:
    """The chain's own rules for one step; return its validated copy."""
    if not isinstance(step, dict):
        raise CommandError("a chain step must be a job object")
    trial = check_later(step, now)
    custom = trial.get("custom")
    if isinstance(custom, dict):
        if custom.get("chain") is not None:
            raise CommandError("chains do not nest: a step cannot carry its own custom.chain")
        if not isinstance(custom.get("chain_result", False), bool):
            raise CommandError("custom.chain_result must be true or false")
    return trial


class Chains(Middleware):
    """The chain middleware: checks ``custom.chain`` at push, pushes the next step at ACK.

    Args:
        results: the results subsystem, which keeps a ``pending`` record for each step
            that asks for a result from the moment its chain is pushed.

    It must come before the middleware that keeps state at push (unique locks, batch
    counts), so that a refused chain leaves nothing behind.
    """

    reads_custom_only = True

    def __init__(self, results: Results | None = None) -> None:
        self.manager: Pusher | None = None
        self.results = results

    def attach(self, manager: Host) -> None:
        """Keep the manager whose push path the next steps take."""
        self.manager = manager

    async def check_push(self, job: dict[str, Any], now: float) -> None:
        """Refuse a job whose ``custom.chain`` is malformed; a job without one passes.

        Each step must pass every rule its own PUSH would apply now (the manager's
        ``check_push``: Faktory's job rules, ``at``, and each feature's, such as ``unique_for``,
        ``expires_at``, ``result_ttl`` or a ``bid`` naming a batch), and the chain's own.

        Raises:
            CommandError: ``custom.chain`` is not a list of 1 to :data:`MAX_STEPS` jobs, or
                a step breaks a push rule (with the message its PUSH would give), carries
                its own ``custom.chain`` (chains do not nest) or has a ``chain_result``
                that is not a boolean; the message names the step (``custom.chain[2]: ...``).
        """
        for index, step in enumerate(_steps(job)):
            try:
                trial = _check_step(step, now)
                if self.manager is not None:
                    await self.manager.check_push(trial, now)
            except CommandError as exc:
                raise CommandError(f"custom.chain[{index}]: {exc.message}") from exc

    async def push(self, job: dict[str, Any], now: float) -> None:
        """Refuse a malformed ``custom.chain`` (see :meth:`check_push`)."""
        await self.check_push(job, now)

    async def storing(self, jobs: Sequence[dict[str, Any]], now: float) -> None:
        """Write the ``pending`` result record of each later step that has a jid and asks
        for a result, so that a RESULT wait on it (the last step's, say) waits; before the
        jobs are stored, so that a fast worker's run of the whole chain cannot end before
        the record is written (it would then replace the last step's outcome)."""
        if self.results is None:
            return
        steps: list[dict[str, Any]] = []
        for job in jobs:
            custom = job.get("custom")
            chain = custom.get("chain") if isinstance(custom, dict) else None
            if isinstance(chain, list):
                steps.extend(_awaited(chain, now))
        await self.results.expect(steps, now)

    async def returned(self, reservation: Reservation, result: bytes | None, now: float) -> None:
        """A job succeeded: push the next step of its chain, if it has one."""
        body = reservation.entry.body
        if MARKER not in body or self.manager is None:
            return
        custom = jsonwire.loads(body).get("custom")
        steps = custom.get("chain") if isinstance(custom, dict) else None
        if not isinstance(steps, list) or not steps:
            return
        value = None if result is None else jsonwire.loads(result)
        step = next_step(steps, value, now)
        jid = reservation.entry.jid
        if jsonwire.depth(step) > jsonwire.MAX_DEPTH:
            reason = (
                f"the chain ended after job {jid}: the next step with the result prepended"
                f" nests deeper than {jsonwire.MAX_DEPTH} levels"
            )
            log.error("%s", reason)
            self._end(steps, reason, now)
            return
        try:
            await self.manager.push(step)
        except CommandError as exc:
            # Checked at the first push; a step can still be refused now (a unique lock
            # held, a batch gone): the chain ends there, and the log says why.
            reason = f"the chain ended after job {jid}: the next step was refused: {exc.wire()}"
            log.warning("%s", reason)
            self._end(steps, reason, now)

    async def failed(
        self, reservation: Reservation, placement: Placement | None, now: float
    ) -> None:
        """A job died or was discarded: its chain ends, and the later steps that asked for
        a result are recorded ``failed`` (errtype ``ChainEnded``), so that a wait on the
        last step's result ends instead of running out."""
        if placement is not None and placement.set != "dead":
            return  # retried or handed back: the chain goes on when the job succeeds
        outcome = "was discarded" if placement is None else "died"
        self._end_after(reservation.entry, outcome, now)

    def hears_ended(self, body: bytes) -> bool:
        """A job carrying a chain must be heard of when it ends without a worker (when
        results are on: only the later steps' result records need ending)."""
        return self.results is not None and MARKER in body

    async def ended(self, entry: Entry, ending: Ending, now: float) -> None:
        """A job deleted unrun, killed or expired ends its chain, as a discarded or dead
        one does."""
        self._end_after(entry, ending.outcome, now)

    def _end_after(self, entry: Entry, outcome: str, now: float) -> None:
        """End the chain ``entry`` carries (if any): ``job <jid> <outcome>`` is the reason."""
        if self.results is None or MARKER not in entry.body:
            return
        custom = jsonwire.loads(entry.body).get("custom")
        steps = custom.get("chain") if isinstance(custom, dict) else None
        if isinstance(steps, list) and steps:
            self._end(steps, f"the chain ended: job {entry.jid} {outcome}", now)

    def _end(self, steps: list[Any], reason: str, now: float) -> None:
        """Record every later step that asked for a result as failed with ``reason``."""
        if self.results is None:
            return
        for step in _awaited(steps, now):
            self.results.abandoned(step, reason, now)


def _awaited(steps: list[Any], now: float) -> Iterator[dict[str, Any]]:
    """The steps, validated, whose result can be waited for: a jid and ``result_ttl``."""
    for step in steps:
        later = step.get("custom") if isinstance(step, dict) else None
        if step.get("jid") and isinstance(later, dict) and "result_ttl" in later:
            yield check_later(step, now)
