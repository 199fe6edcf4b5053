"""The hot path's own Redis connection: pipelined ``EVALSHA`` over an :class:`asyncio.Protocol`.

The batch script (:mod:`werk.storage.redis.batch`) is the store's busiest call: every PUSH,
FETCH, ACK and FAIL goes through it. redis-py's asyncio connection costs a stream reader
wake-up, a reply parse through its parser classes, a health check and command packing
through its encoder per call; here a command is packed by ``hiredis.pack_command`` and
written at once, and a reply goes from ``data_received`` through ``hiredis.Reader`` (the
RESP parser, a library) straight to the callback (or future) of the call that waits for
it, replies matched to calls in order (Redis answers one connection in order).

redis-py still makes the connection: its ``connect()`` does TCP or a Unix socket, TLS
(``rediss://``), AUTH, ``SELECT`` and the store's retry with backoff, so every URL option
works as for the store's other commands. Once connected, the transport is handed to
:class:`RespProtocol` and redis-py forgets it.

:class:`ScriptLink` keeps the store's rules: ``NOSCRIPT`` (a restarted Redis) loads the
script and sends again; after a lost connection the call is sent once more on a new
connection, whose connect retries with the store's backoff (so Redis may be away for about
as long as for any other command), then the error is raised. Sending again is safe only for
a script that recognises a call it already ran: the batch script does (its reply key).
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, cast

import hiredis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from werk.errors import StorageError

LOST = (RedisConnectionError, RedisTimeoutError, OSError)

OnReply = Callable[[Any, BaseException | None], None]
"""Called with ``(reply, None)``, or ``(None, error)`` for an error reply or a lost
connection; must not raise."""


def _settle(fut: asyncio.Future[Any], reply: Any, error: BaseException | None) -> None:
    if fut.done():  # its caller was cancelled; the reply is dropped
        return
    if error is None:
        fut.set_result(reply)
    else:
        fut.set_exception(error)


class RespProtocol(asyncio.Protocol):
    """One Redis connection: calls are written at once, replies resolve them in order."""

    def __init__(self) -> None:
        self._writer: asyncio.StreamWriter | None = None
        self._transport: asyncio.Transport | None = None
        self._reader = hiredis.Reader(replyError=ResponseError)
        self._waiting: deque[OnReply] = deque()
        self.lost: BaseException | None = None
        """Why the connection is gone (``None`` while it is up)."""

    def attach(self, writer: asyncio.StreamWriter) -> None:
        """Take over the transport of a connected stream (see the module doc)."""
        # The writer stays referenced: a StreamWriter that is garbage collected closes its
        # transport (Python 3.11.5+).
        self._writer = writer
        self._transport = cast("asyncio.Transport", writer.transport)
        writer.transport.set_protocol(self)

    def send(self, on_reply: OnReply, *args: str | bytes | memoryview | int) -> None:
        """Send one command; ``on_reply`` gets its reply (see :data:`OnReply`).

        Raises:
            redis.exceptions.ConnectionError: the connection is gone.
        """
        transport = self._transport
        if self.lost is not None or transport is None:
            raise RedisConnectionError(f"connection to Redis lost: {self.lost}")
        transport.write(hiredis.pack_command(args))  # type: ignore[arg-type]  # stub: 1-tuple
        self._waiting.append(on_reply)

    def call(self, *args: str | bytes | memoryview | int) -> asyncio.Future[Any]:
        """Send one command; the future resolves to its reply (an error reply raises).

        Raises:
            redis.exceptions.ConnectionError: the connection is gone.
        """
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.send(functools.partial(_settle, fut), *args)
        return fut

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        try:
            while (reply := reader.gets()) is not False:
                on_reply = self._waiting.popleft()
                if isinstance(reply, ResponseError):
                    text = str(reply)
                    on_reply(None, NoScriptError(text) if text.startswith("NOSCRIPT") else reply)
                else:
                    on_reply(reply, None)
        except (hiredis.ProtocolError, IndexError) as exc:  # garbage, or a reply unasked for
            self.close()
            self._fail(RedisConnectionError(f"Redis protocol error: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisConnectionError(f"connection to Redis lost: {exc or 'closed'}"))

    def _fail(self, error: RedisConnectionError) -> None:
        if self.lost is None:
            self.lost = error
        while self._waiting:
            self._waiting.popleft()(None, error)

    def close(self) -> None:
        """Close the connection; calls still waiting fail with ``ConnectionError``."""
        if self._transport is not None:
            self._transport.close()
        self._fail(RedisConnectionError("connection to Redis closed"))


class ScriptLink:
    """Runs one Lua script over a connection of its own (see the module doc).

    Args:
        client: the store's client; the connection is made with its pool's settings.
        source: the script's Lua source.
        retries: the store's retries; 0 means a lost connection fails the call at once,
            otherwise it is sent once more on a new connection (which retries connecting).
    """

    def __init__(self, client: aioredis.Redis, source: str, retries: int) -> None:
        self._client = client
        self._script = client.register_script(source)
        self._retries = retries
        self._resp: RespProtocol | None = None
        self._connecting: asyncio.Future[RespProtocol] | None = None
        self._closed = False

    async def __call__(self, keys: Sequence[str], args: Sequence[str | bytes]) -> Any:
        """Run the script with ``keys`` and ``args``; return its reply.

        Raises:
            redis.exceptions.RedisError: Redis answered with an error, or stayed away.
        """
        try:
            return await self._call(keys, args)
        except LOST:
            # The connection died (a restarted Redis, a network blip), perhaps after the
            # script ran: one more try on a fresh one, whose connect retries with backoff by
            # itself (the pool's policy; retrying here too would multiply the two: minutes,
            # not seconds). The batch script keeps each call's reply under the call's own
            # key and returns it to the call sent again, so nothing runs twice.
            self._drop()
            if self._retries == 0:
                raise
        try:
            return await self._call(keys, args)
        except LOST:
            self._drop()
            raise

    def send(self, keys: Sequence[str], args: Sequence[str | bytes], on_reply: OnReply) -> bool:
        """Send the call at once if the connection is up (no task, no future): ``on_reply``
        gets the reply; on ``NOSCRIPT`` or a lost connection finish with :meth:`recover`.
        Return ``False`` (nothing sent) if there is no live connection: use the call."""
        resp = self._resp
        if resp is None or resp.lost is not None:
            return False
        resp.send(on_reply, "EVALSHA", self._script.sha, len(keys), *keys, *args)
        return True

    async def recover(
        self, keys: Sequence[str], args: Sequence[str | bytes], error: BaseException
    ) -> Any:
        """Finish a call that :meth:`send` sent and that failed with ``error``, by the
        rules of a call: ``NOSCRIPT`` loads the script and sends again, a lost connection
        sends once more on a new one; any other error is raised."""
        if self._closed:
            raise error
        if isinstance(error, NoScriptError):
            return await self(keys, args)
        if not isinstance(error, LOST):
            raise error
        self._drop()
        if self._retries == 0:
            raise error
        try:
            return await self._call(keys, args)
        except LOST:
            self._drop()
            raise

    async def _call(self, keys: Sequence[str], args: Sequence[str | bytes]) -> Any:
        resp = self._resp
        if resp is None or resp.lost is not None:
            resp = await self._connect()
        sha = self._script.sha
        try:
            return await resp.call("EVALSHA", sha, len(keys), *keys, *args)
        except NoScriptError:
            await resp.call("SCRIPT", "LOAD", self._script.script)
            return await resp.call("EVALSHA", sha, len(keys), *keys, *args)

    async def _connect(self) -> RespProtocol:
        # Concurrent callers share one connect (batches may be in flight side by side).
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if self._connecting is connecting and connecting.done():
                self._connecting = None

    async def _open(self) -> RespProtocol:
        pool: Any = self._client.connection_pool  # make_connection() is unannotated
        conn = pool.make_connection()
        await conn.connect()  # TCP/Unix, TLS, AUTH, SELECT, with the pool's retry policy
        # The handshake's replies are all read: the stream holds nothing more, and its
        # transport is ours from here on (redis-py forgets it).
        writer = getattr(conn, "_writer", None)
        if not isinstance(writer, asyncio.StreamWriter):  # redis-py changed its internals
            await conn.disconnect()
            raise StorageError(
                "this redis-py version does not hand over its connection's stream"
                " (Werk supports redis-py 5 to 8)"
            )
        conn._reader = conn._writer = None
        resp = RespProtocol()
        resp.attach(writer)
        self._resp = resp
        return resp

    def _drop(self) -> None:
        resp, self._resp = self._resp, None
        if resp is not None:
            resp.close()

    async def close(self) -> None:
        """Close the connection; calls in flight fail."""
        self._closed = True
        self._drop()
