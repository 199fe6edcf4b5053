"""One Redis connection kept for the batch script (werk.storage.redis.batch).

The batcher has at most one batch in flight, so it needs no pool: it keeps one connection
of the store's pool and writes ``EVALSHA`` on it directly, skipping redis-py's per-call
pool checkout, retry wrapper and timeout (about 30 us of the server's CPU per round trip,
measured A/B). The rules stay the store's: ``NOSCRIPT`` (a restarted Redis) loads the
script and sends again, a lost connection is retried with the same backoff as every other
command, ``retries`` times, then the error is raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

LOST = (RedisConnectionError, RedisTimeoutError, OSError)


class ScriptLink:
    """Runs one Lua script over a connection of its own, one call at a time.

    Args:
        client: the store's client; the connection comes from (and goes back to) its pool.
        source: the script's Lua source.
        retries: how often a call is retried after a lost connection.
    """

    def __init__(self, client: aioredis.Redis, source: str, retries: int) -> None:
        self._client = client
        self._script = client.register_script(source)
        self._retries = retries
        self._backoff = ExponentialBackoff(cap=1.0, base=0.05)
        self._conn: AbstractConnection | None = None

    async def __call__(self, keys: Sequence[str], args: Sequence[str | bytes]) -> Any:
        """Run the script with ``keys`` and ``args``; return its reply.

        Raises:
            redis.exceptions.RedisError: Redis answered with an error, or stayed away.
        """
        failures = 0
        while True:
            try:
                return await self._call(keys, args)
            except LOST:
                await self._drop()
                failures += 1
                if failures > self._retries:
                    raise
                await asyncio.sleep(self._backoff.compute(failures))

    async def _call(self, keys: Sequence[str], args: Sequence[str | bytes]) -> Any:
        if self._conn is None:
            pool: Any = self._client.connection_pool  # get_connection() is unannotated
            self._conn = await pool.get_connection()
        conn = self._conn
        try:
            await conn.send_command("EVALSHA", self._script.sha, len(keys), *keys, *args)
            try:
                return await conn.read_response()
            except NoScriptError:
                await conn.send_command("SCRIPT", "LOAD", self._script.script)
                await conn.read_response()
                await conn.send_command("EVALSHA", self._script.sha, len(keys), *keys, *args)
                return await conn.read_response()
        except asyncio.CancelledError:
            await self._drop()  # a reply may be half read: never reuse this connection
            raise

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.disconnect(nowait=True)
            await self._client.connection_pool.release(conn)

    async def close(self) -> None:
        """Give the connection back to the pool."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._client.connection_pool.release(conn)
