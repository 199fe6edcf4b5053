"""Exceptions a job raises to decide what its failure does, instead of the retry backoff.

Both are reported with Werk's FAIL extension fields (docs/protocol.md, FAIL): a Faktory
server ignores those fields, and the job then follows its ``retry`` as any failure does.
The errtype reported is the class name of the exception they were raised from
(``raise NoRetry("bad address") from exc`` reports ``exc``'s class), else their own.
"""

from __future__ import annotations

import math
from typing import Any


class _Decided(Exception):
    """A failure whose fate the job decided; :attr:`fail_fields` go into its FAIL."""

    fail_fields: dict[str, Any] = {}

    @property
    def errtype(self) -> str:
        """The class name of the exception this one was raised from, else its own."""
        cause = self.__cause__
        return type(cause).__name__ if cause is not None else type(self).__name__


class NoRetry(_Decided):
    """Fail the job for good: it goes to the dead set at once, whatever retries it has
    left (as Dramatiq's ``throws`` or Sidekiq's ``retry: false`` for one failure, but kept
    in the dead set, where it can be retried by hand). Sent as FAIL's ``dead: true``."""

    fail_fields = {"dead": True}


MAX_RETRY_IN = 180 * 24 * 3600
"""The longest :class:`RetryIn` delay, in seconds: 180 days, as long as a Werk server keeps
a dead job (it would not keep a retry due later)."""


class RetryIn(_Decided):
    """Fail the job and retry it ``seconds`` from now (rounded up to whole seconds),
    instead of after Faktory's backoff, if it has a retry left; the retry is counted as
    any other. Sent as FAIL's ``retry_in``. With no retry left the job fails for good as
    any failure does (discarded with ``retry=0``), and the worker logs a warning saying so.

    Raises:
        ValueError: ``seconds`` is negative, not finite, or over :data:`MAX_RETRY_IN`.
    """

    def __init__(self, seconds: float, message: str = "") -> None:
        if not math.isfinite(seconds) or not 0 <= seconds <= MAX_RETRY_IN:
            raise ValueError(
                f"RetryIn needs a number of seconds from 0 to {MAX_RETRY_IN} (180 days),"
                f" not {seconds!r}"
            )
        super().__init__(message or f"retry in {seconds:g}s")
        self.seconds = seconds
        self.fail_fields = {"retry_in": math.ceil(seconds)}
