"""The two I/O shells around :class:`~werk.client.proto.ClientProtocol`.

:class:`Connection` moves bytes over a blocking socket, :class:`AsyncConnection` over
asyncio streams. Both only write a :class:`~werk.client.proto.Call`'s bytes, read until the
protocol has a reply, and hand it to the call's parser; they may also write several calls
at once and read the replies in order (pipelining keeps to one reply per request).
An I/O failure leaves a connection unusable: it is closed and the error propagates.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from werk.client.proto import NEED_DATA, Call, ClientProtocol, Identity
from werk.client.url import ServerAddress
from werk.errors import CommandError, ProtocolError, WerkError
from werk.protocol.resp import Reply

T = TypeVar("T")
READ_SIZE = 65536
DEFAULT_TIMEOUT = 10.0
"""Seconds to wait for a reply; FETCH answers within ~2 s even when no job comes."""


class ConnectionClosedError(WerkError):
    """The server closed the connection (or it broke) before the reply was complete."""


class ServerUnreachableError(WerkError, ConnectionError):
    """A client gave up connecting: the server at :attr:`url` could not be reached.

    Raised by :class:`~werk.client.Client` and :class:`~werk.client.AsyncClient` after
    their ``connect_retries``; the last underlying error (``ConnectionRefusedError``,
    ``TimeoutError``, a DNS failure ...) is its ``__cause__``. It is a ``ConnectionError``
    (so an ``OSError``) as well as a :class:`~werk.errors.WerkError`. Werk's own class.

    Args:
        url: the address tried, password masked (``ServerAddress.url()``).
        attempts: how many connections were tried.
        seconds: how long the attempts took in all.
        cause: the last attempt's error.
    """

    def __init__(self, url: str, attempts: int, seconds: float, cause: BaseException) -> None:
        super().__init__(
            f"cannot reach the Werk server at {url} ({attempts} attempts over {seconds:.1f}s;"
            f" last error: {type(cause).__name__}: {cause})"
        )
        self.url = url
        self.attempts = attempts
        self.seconds = seconds


class NoGreetingError(WerkError, TimeoutError):
    """The peer accepted the connection but sent no Faktory greeting (``+HI``) in time: a
    busy server, or a port that is not a work port. A ``TimeoutError``, so it is retried."""

    def __init__(self, url: str, seconds: float) -> None:
        super().__init__(
            f"no greeting from {url} within {seconds:g}s: is it a Werk/Faktory work port?"
            f" {PORT_HINT}"
        )


class NotWorkPortError(ProtocolError):
    """The peer is an HTTP server (the web UI?), not a work port: never retried."""

    def __init__(self, url: str, answer: bytes) -> None:
        first = answer.partition(b"\r\n")[0][:60].decode("latin-1")
        super().__init__(
            f"{url} is an HTTP server (it answered {first!r}), not a Werk/Faktory work port"
            f" {PORT_HINT}"
        )


PORT_HINT = "(the web UI is usually on 7420, the work port on 7419)"
GREETING_PROBE_AFTER = 2.0
"""Seconds without a greeting after which a newline is sent: an HTTP server answers it at
once (``HTTP/1.1 400``), while a Werk or Faktory server greets as soon as it accepts."""
PROBE = b"\r\n"


def check_greeting(data: bytes, url: str) -> bytes:
    """Return the first bytes a peer sent, unless they are an HTTP answer.

    Raises:
        ConnectionClosedError: the peer closed the connection without a word.
        NotWorkPortError: the peer answered as an HTTP server.
    """
    if not data:
        raise ConnectionClosedError("the server closed the connection")
    if data.startswith(b"HTTP/"):
        raise NotWorkPortError(url, data)
    return data


CONNECT_BACKOFF = (0.25, 2.0)
"""``backoff_delays`` base and cap of a client's connection retries: waits from 0.125 s up to
at most 0.25, 0.5, 1 and 2 s (randomised), 0.5-3.75 s in all (about 2 s on average) with the
default four retries."""

CONNECTION_ERRORS = (OSError, EOFError, ConnectionClosedError, asyncio.IncompleteReadError)
"""Exceptions that mean "this connection is gone; reconnect" (``TimeoutError`` included)."""


def _outcome(call: Call[Any], reply: Reply) -> Any:
    try:
        return call.parse(reply)
    except CommandError as exc:
        return exc


class Connection:
    """One blocking connection to a server, handshake done.

    Use :meth:`open` to connect. Not thread-safe: one thread at a time (the pool in
    :class:`~werk.client.Client` takes care of that).
    """

    def __init__(self, sock: socket.socket, proto: ClientProtocol) -> None:
        self._sock = sock
        self.proto = proto
        self.closed = False

    @classmethod
    def open(
        cls,
        address: ServerAddress,
        identity: Identity | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Connection:
        """Connect, do the handshake, and return the ready connection.

        Raises:
            OSError: the server cannot be reached.
            AuthenticationError: the password is missing or wrong (the message names the
                server: ``the server tcp://:***@host:7419 refused the password: Invalid
                password``).
        """
        sock = socket.create_connection((address.host, address.port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            context = address.ssl_context()
            if context is not None:
                sock = context.wrap_socket(sock, server_hostname=address.host)
            conn = cls(sock, ClientProtocol(identity, address.password, address.url()))
            conn._greeting(address.url(), timeout)
            conn._handshake()
        except BaseException:
            sock.close()
            raise
        return conn

    def _greeting(self, url: str, timeout: float) -> None:
        """Read the peer's first bytes, probing with a newline when they are slow to come.

        Raises:
            NoGreetingError: nothing came within ``timeout`` seconds.
            NotWorkPortError: the peer is an HTTP server.
        """
        sock = self._sock
        first = min(GREETING_PROBE_AFTER, timeout)
        sock.settimeout(first)
        try:
            try:
                data = sock.recv(READ_SIZE)
            except TimeoutError:
                if timeout <= first:
                    raise NoGreetingError(url, timeout) from None
                sock.sendall(PROBE)
                sock.settimeout(timeout - first)
                try:
                    data = sock.recv(READ_SIZE)
                except TimeoutError:
                    raise NoGreetingError(url, timeout) from None
        finally:
            sock.settimeout(timeout)
        self.proto.feed(check_greeting(data, url))

    def _handshake(self) -> None:
        while (line := self.proto.handshake(self._read_reply())) is not None:
            self._sock.sendall(line)

    def _read_reply(self) -> Reply:
        proto = self.proto
        while (reply := proto.next_reply()) is NEED_DATA:
            data = self._sock.recv(READ_SIZE)
            if not data:
                raise ConnectionClosedError("the server closed the connection")
            proto.feed(data)
        return reply  # type: ignore[return-value]

    def call(self, call: Call[T]) -> T:
        """Send one command and return its parsed reply (or raise its mapped error)."""
        timeout = self._sock.gettimeout()
        try:
            self._sock.sendall(call.data)
            if call.wait and timeout is not None:
                self._sock.settimeout(timeout + call.wait)
            reply = self._read_reply()
            if call.wait:
                self._sock.settimeout(timeout)
        except BaseException:
            self.close(polite=False)
            raise
        return call.parse(reply)

    def pipeline(self, calls: Sequence[Call[Any]]) -> list[Any]:
        """Send several commands in one write; return their results in order.

        A command refused by the server yields its :class:`CommandError` as the result
        instead of raising, so the replies that follow are still read.
        """
        try:
            self._sock.sendall(b"".join(call.data for call in calls))
            replies = [self._read_reply() for _ in calls]
        except BaseException:
            self.close(polite=False)
            raise
        return [_outcome(call, reply) for call, reply in zip(calls, replies, strict=True)]

    def close(self, polite: bool = True) -> None:
        """Close the connection, saying END first when ``polite`` and still healthy."""
        if self.closed:
            return
        self.closed = True
        try:
            if polite:
                self._sock.sendall(self.proto.end())
        except OSError:
            pass
        finally:
            self._sock.close()


class AsyncConnection:
    """One asyncio connection to a server, handshake done. Use :meth:`open`.

    Not safe for concurrent use by several tasks; :class:`~werk.client.AsyncClient`'s
    pool hands each connection to one task at a time.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        proto: ClientProtocol,
        timeout: float,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.proto = proto
        self.timeout = timeout
        self.closed = False
        self.opened = time.monotonic()
        """``time.monotonic()`` when the connection was made."""
        self._deadline: float | None = None
        """``time.monotonic()`` by which the pending read must get data (``None``: no read)."""
        self._watchdog: asyncio.TimerHandle | None = None

    @classmethod
    async def open(
        cls,
        address: ServerAddress,
        identity: Identity | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> AsyncConnection:
        """Connect, do the handshake, and return the ready connection.

        Raises:
            OSError: the server cannot be reached.
            AuthenticationError: the password is missing or wrong (the message names the
                server: ``the server tcp://:***@host:7419 refused the password: Invalid
                password``).
        """
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                address.host, address.port, ssl=address.ssl_context(), limit=READ_SIZE
            )
        conn = cls(
            reader, writer, ClientProtocol(identity, address.password, address.url()), timeout
        )
        try:
            await conn._greeting(address.url())
            while (line := conn.proto.handshake(await conn._read_reply())) is not None:
                writer.write(line)
        except BaseException:
            conn.close(polite=False)
            raise
        return conn

    async def _greeting(self, url: str) -> None:
        """Read the peer's first bytes, probing with a newline when they are slow to come.

        Raises:
            NoGreetingError: nothing came within the connection's timeout.
            NotWorkPortError: the peer is an HTTP server.
        """
        first = min(GREETING_PROBE_AFTER, self.timeout)
        try:
            data = await asyncio.wait_for(self._reader.read(READ_SIZE), first)
        except TimeoutError:
            if self.timeout <= first:
                raise NoGreetingError(url, self.timeout) from None
            self._writer.write(PROBE)
            try:
                data = await asyncio.wait_for(self._reader.read(READ_SIZE), self.timeout - first)
            except TimeoutError:
                raise NoGreetingError(url, self.timeout) from None
        self.proto.feed(check_greeting(data, url))

    async def _read_reply(self, wait: float = 0.0) -> Reply:
        """Read until the protocol has a reply; each read gets ``timeout + wait`` seconds.

        Raises:
            TimeoutError: a read got no data in time (see :meth:`_watch`).
        """
        proto = self.proto
        while (reply := proto.next_reply()) is NEED_DATA:
            self._deadline = time.monotonic() + self.timeout + wait
            if self._watchdog is None:
                self._watchdog = asyncio.get_running_loop().call_later(
                    self.timeout + wait, self._watch
                )
            try:
                data = await self._reader.read(READ_SIZE)
            finally:
                self._deadline = None
            if not data:
                raise ConnectionClosedError("the server closed the connection")
            proto.feed(data)
        return reply  # type: ignore[return-value]

    def _watch(self) -> None:
        """Fail the pending read once its deadline passed, else look again at the deadline.

        One timer per connection, re-armed only when it fires, instead of an
        ``asyncio.timeout`` per read (a worker reads once or twice per job): a read sets
        :attr:`_deadline`, and the timer checks it.
        """
        self._watchdog = None
        if self._deadline is None or self.closed:
            return  # no read pending: the next read arms the timer again
        remaining = self._deadline - time.monotonic()
        if remaining > 0:
            self._watchdog = asyncio.get_running_loop().call_later(remaining, self._watch)
            return
        # The pending read raises this; the caller then closes the connection.
        self._reader.set_exception(TimeoutError(f"no reply within {self.timeout:g}s"))

    async def call(self, call: Call[T]) -> T:
        """Send one command and return its parsed reply (or raise its mapped error)."""
        try:
            self._writer.write(call.data)
            await self._writer.drain()
            reply = await self._read_reply(call.wait)
        except BaseException:
            self.close(polite=False)
            raise
        return call.parse(reply)

    async def pipeline(
        self, calls: Sequence[Call[Any]], first: Callable[[Any], None] | None = None
    ) -> list[Any]:
        """Send several commands in one write; return their results in order.

        A command refused by the server yields its :class:`CommandError` as the result.
        ``first``, when given, is called with the first command's result as soon as its
        reply is read, before the later replies are waited for (a worker logs a job's
        accepted ACK while the FETCH pipelined after it may still wait ~2 s for a job).
        """
        try:
            self._writer.write(b"".join(call.data for call in calls))
            await self._writer.drain()
            if first is None:
                replies = [await self._read_reply() for _ in calls]
            else:
                replies = [await self._read_reply()]
                first(_outcome(calls[0], replies[0]))
                replies += [await self._read_reply() for _ in calls[1:]]
        except BaseException:
            self.close(polite=False)
            raise
        return [_outcome(call, reply) for call, reply in zip(calls, replies, strict=True)]

    def close(self, polite: bool = True) -> None:
        """Close the connection, saying END first when ``polite`` and still healthy."""
        if self.closed:
            return
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        try:
            if polite and not self._writer.is_closing():
                self._writer.write(self.proto.end())
        except (OSError, RuntimeError):
            pass
        self._writer.close()
