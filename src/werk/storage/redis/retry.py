"""Which Redis errors the store retries: a lost connection yes, a refusal never.

redis-py's :class:`~redis.exceptions.AuthenticationError` and
:class:`~redis.exceptions.AuthorizationError` subclass its ``ConnectionError``, so a retry
policy on ``ConnectionError`` also retries a wrong or missing password, and the retries of
the command and of its connect stack up: a Redis that wants a password kept ``werk server``
busy for minutes before it said why. :class:`StoreRetry` lets those through at once;
errors Redis answers with (``ResponseError``: unknown command, ``NOPERM``, a database index
out of range) are never retried by redis-py in the first place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio.retry import Retry
from redis.exceptions import AuthenticationError, AuthorizationError

T = TypeVar("T")

PERMANENT = (AuthenticationError, AuthorizationError)
"""Errors that another try cannot cure (an operator must change the URL or Redis)."""


class _Refused(Exception):
    """Carries a :data:`PERMANENT` error past redis-py's retry loop (not a RedisError)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class StoreRetry(Retry):
    """redis-py's retry with backoff, except that :data:`PERMANENT` errors raise at once."""

    async def call_with_retry(
        self, do: Callable[[], Awaitable[T]], fail: Any, *args: Any, **kwargs: Any
    ) -> T:
        """Run ``do`` with the policy's retries; a permanent error is raised unretried."""

        async def once() -> T:
            try:
                return await do()
            except PERMANENT as exc:
                raise _Refused(exc) from exc

        try:
            return await super().call_with_retry(once, fail, *args, **kwargs)
        except _Refused as refused:
            raise refused.error from None
