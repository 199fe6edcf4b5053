"""The cross-server wake-up of the Redis store: one pub/sub subscriber task per store.

Every script that makes jobs fetchable publishes ``{"o": origin, "q": [queues]}`` on
``<prefix>available`` (a push only while another server has marked a FETCH waiting, see
``BATCH``); :class:`AvailableListener` calls the store's callbacks for messages
from other stores (a store already woke its own waiters). After a lost connection it
resubscribes by itself and then announces every known queue, since messages published while
it was away are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from werk.storage.redis.keys import Keys

log = logging.getLogger(__name__)

RECONNECT_DELAYS = (0.05, 0.1, 0.2, 0.5, 1.0)
"""Seconds between reconnect attempts; the last one repeats."""

READ_TIMEOUT = 1.0
"""Seconds one read waits; reads return regularly so health checks and stop() run."""


class AvailableListener:
    """Follows the ``available`` channel and calls ``notify`` with queue names.

    Args:
        connect: makes a client without retries (the listener reconnects by itself).
        keys: the store's key names.
        origin: the store's id; its own messages are skipped.
        notify: the store's callback dispatcher.
    """

    def __init__(
        self,
        connect: Callable[[], aioredis.Redis],
        keys: Keys,
        origin: str,
        notify: Callable[[Iterable[str]], None],
    ) -> None:
        self._connect = connect
        self._keys = keys
        self._origin = origin
        self._notify = notify
        self._redis: aioredis.Redis | None = None
        self._pubsub: PubSub | None = None
        self._task: asyncio.Task[None] | None = None
        self.failures = 0
        """How many times the subscription was lost (shown by diagnostics)."""

    async def start(self) -> None:
        """Subscribe (so messages published after this returns are seen) and start reading."""
        await self._subscribe()
        self._task = asyncio.create_task(self._follow(), name="werk-redis-available")

    async def stop(self) -> None:
        """Stop reading and close the subscriber connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._disconnect()

    async def _subscribe(self) -> None:
        self._redis = self._connect()
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(self._keys.available)

    async def _disconnect(self) -> None:
        pubsub, client = self._pubsub, self._redis
        self._pubsub = self._redis = None
        with contextlib.suppress(RedisError, OSError):
            if pubsub is not None:
                # PubSub.aclose carries no annotations in redis-py 8.
                await cast("Callable[[], Awaitable[None]]", pubsub.aclose)()
            if client is not None:
                await client.aclose()

    async def _follow(self) -> None:
        while True:
            try:
                await self._read()
            except (RedisError, OSError) as exc:
                self.failures += 1
                log.warning("redis: lost the available channel (%s); resubscribing", exc)
                await self._disconnect()
                await self._resubscribe()

    async def _read(self) -> None:
        pubsub = self._pubsub
        assert pubsub is not None
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=READ_TIMEOUT)
            if message is not None and message.get("type") == "message":
                self._dispatch(message["data"])

    def _dispatch(self, data: bytes) -> None:
        try:
            decoded = cast("dict[str, Any]", json.loads(data))
            origin, queues = decoded["o"], decoded["q"]
        except (ValueError, KeyError, TypeError):
            log.warning("redis: ignoring a malformed available message %r", data[:200])
            return
        if origin != self._origin and isinstance(queues, list):
            self._notify([str(q) for q in queues])

    async def _resubscribe(self) -> None:
        attempt = 0
        while True:
            await asyncio.sleep(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
            attempt += 1
            try:
                await self._subscribe()
                assert self._redis is not None
                known = await cast("Awaitable[set[bytes]]", self._redis.smembers(self._keys.queues))
            except (RedisError, OSError):
                await self._disconnect()
                continue
            log.info("redis: resubscribed to the available channel")
            self._notify(sorted(q.decode() for q in known))
            return
