"""One client connection: the handshake with its deadline, then read, dispatch, reply.

Commands on a connection are strictly sequential, one reply each, in order. Lines that
arrive together (a pipelining client) are answered together in one write. This module has
the server's one catch-all: a bug in a handler becomes ``-ERR internal error`` and a log
line, never a dead server or a dead neighbour.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from werk.errors import (
    SHUTTING_DOWN,
    STORAGE_ERROR,
    CommandError,
    InvalidJSONError,
    LineTooLongError,
    SlowLineError,
    StorageError,
)
from werk.protocol import jsonwire
from werk.protocol.auth import check_password, new_challenge
from werk.protocol.commands import HELLO, hi_payload, split_command
from werk.protocol.fields import Kind, typed_payload
from werk.protocol.resp import OK, LineReader, encode_error, encode_simple
from werk.server.handlers import BARE_REPLIES, HANDLERS

if TYPE_CHECKING:
    from werk.server.state import ServerState

log = logging.getLogger("werk.server")

READ_SIZE = 256 * 1024
"""Bytes read from a connection at a time. The server's stream reader reads ahead about
twice as many (its ``limit``, :class:`werk.server.server.Server`) before it stops reading the
socket, so commands sent faster than they are dispatched wait in the kernel's buffers and
the client's ``send``, not in the server's memory, as with Faktory's one command at a time."""
UNREAD_REPLIES = 256 * 1024
"""Bytes of replies a client may leave unread, beyond what the kernel's socket buffers took,
before the server stops reading its commands until they go out (Werk's rule: Faktory
writes each reply before reading the next command, so it stops at the kernel's buffers)."""
WRITE_TIMEOUT = 30.0
"""Seconds a client may leave the server waiting to write its replies; then it is closed."""
LINE_TIMEOUT = 60.0
"""Seconds a command line may take from its first byte to its end (16 MiB at about
2 Mbit/s); a client that dribbles a line is told so and closed. Between lines a connection
may be silent as long as it likes (``idle_timeout`` aside)."""


class HandshakeError(Exception):
    """The client did not say a valid HELLO in time: close without a reply."""


HELLO_FIELDS: dict[str, Kind] = {
    "hostname": "str",
    "wid": "str",
    "pid": "int",
    "labels": "str_list",
    "pwdhash": "str",
    "v": "int",
}
"""Faktory's ``ClientData``: the field types a HELLO must have."""


def parse_hello(data: bytes) -> dict[str, Any]:
    """Decode a HELLO payload with Faktory's field types (keys matched regardless of case).

    Raises:
        HandshakeError: not a JSON object, or a field of the wrong type (Faktory closes the
            connection without a reply, and so does Werk).
    """
    try:
        hello = jsonwire.loads(data)
    except InvalidJSONError as exc:
        raise HandshakeError("HELLO is not JSON") from exc
    typed = typed_payload(hello, HELLO_FIELDS) if isinstance(hello, dict) else None
    if typed is None or "\x00" in typed.get("wid", ""):
        raise HandshakeError("HELLO is not a JSON object of Faktory's field types")
    return typed


class Connection:
    """A connected client, from ``+HI`` to close."""

    def __init__(
        self, server: ServerState, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.lines = LineReader(server.config.max_line)
        self.wid = ""
        self.hello: dict[str, Any] = {}
        self.closing = False
        self.busy = False
        self._held: list[bytes] = []
        self._held_size = 0
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    async def serve(self) -> None:
        """Run the connection to its end; never raises."""
        try:
            async with asyncio.timeout(self.server.config.handshake_timeout):
                authenticated = await self._handshake()
            if authenticated:
                await self._loop()
        except (TimeoutError, HandshakeError, ConnectionError, asyncio.IncompleteReadError):
            pass
        except (LineTooLongError, SlowLineError) as exc:
            await self._send(encode_error(f"ERR {exc}"))
        except Exception:
            log.exception("connection %s failed", self.peer)
        finally:
            await self._close()

    async def _read_line(self) -> bytes | None:
        started: float | None = None  # when the unfinished line was first seen
        while True:
            line = self.lines.next_line()
            if line is not None:
                return line
            if not self.lines.pending:
                data = await self.reader.read(READ_SIZE)
            else:
                loop = asyncio.get_running_loop()
                started = loop.time() if started is None else started
                try:
                    async with asyncio.timeout_at(started + LINE_TIMEOUT):
                        data = await self.reader.read(READ_SIZE)
                except TimeoutError:
                    raise SlowLineError(
                        f"a command line was not finished within {LINE_TIMEOUT:g} s"
                    ) from None
            if not data:
                return None
            self.lines.feed(data)

    async def _handshake(self) -> bool:
        password = self.server.config.password
        iterations, salt = new_challenge() if password else (None, None)
        await self._send(encode_simple(hi_payload(iterations, salt)))
        line = await self._read_line()
        if line is None or not line.startswith(HELLO.encode() + b" {"):
            raise HandshakeError("first line was not HELLO")
        hello = parse_hello(line[len(HELLO) + 1 :])
        if password and iterations and salt:
            rounds = iterations if hello.get("v", 0) >= 2 else 1
            given = hello.get("pwdhash")
            if not isinstance(given, str) or not check_password(password, salt, rounds, given):
                await self.server.auth_failed(self.peer)
                await self._send(encode_error("ERR Invalid password"))
                return False
        if not self.server.admit(self):
            # As Faktory: the handshake completes, then the error (the client sees it as
            # the reply to its first command) and the close.
            await self._send(OK)
            await self._send(
                encode_error(f"ERR too many connections: {self.server.connection_count}")
            )
            return False
        wid = hello.get("wid", "")
        if wid:
            self.wid = wid
            self.hello = hello
            process = await self.server.processes.hello(wid, hello)
            # The record's state: a process coming back after all its connections closed
            # starts running again, as in Faktory (its state belonged to its old
            # connections), and a new record's state is "".
            if process.state:
                self.server.process_states[wid] = process.state
            else:
                self.server.process_states.pop(wid, None)
        await self._send(OK)
        return True

    async def _loop(self) -> None:
        while not self.closing:
            idle = self.server.config.idle_timeout
            if idle and not self.wid:
                # A producer silent for longer than ``idle_timeout`` is closed.
                async with asyncio.timeout(idle):
                    line = await self._read_line()
            else:
                line = await self._read_line()
            if line is None:
                return
            if self.writer.transport.get_write_buffer_size() > UNREAD_REPLIES:
                await self._send(b"")  # its replies are not read: wait (bounded) for room
            # Answer the complete lines already received in one write (a command that is
            # about to wait, a FETCH with no job, first calls :meth:`release`), until their
            # replies pass UNREAD_REPLIES: those are written at once, and the next line
            # waits for room as above. (Rounds under the limit are queued in the outbox;
            # only the input read ahead can run between two passes of the loop.)
            self._hold(await self._dispatch(line))
            while (
                not self.closing
                and self._held_size <= UNREAD_REPLIES
                and (line := self.lines.next_line()) is not None
            ):
                self._hold(await self._dispatch(line))
            full = self._held_size > UNREAD_REPLIES
            self.release()
            if full:
                await self._send(b"")
            if self.server.stopping:
                return

    async def _dispatch(self, line: bytes) -> bytes | None:
        verb, arg = split_command(line)
        self.server.command_count += 1
        if self.server.stopping:
            self.closing = True
            return encode_error(f"ERR {SHUTTING_DOWN}")
        handler = HANDLERS.get(verb)
        if handler is None:
            return encode_error(f"ERR unknown command {verb}")
        if verb in BARE_REPLIES and b" " not in line:
            return encode_error("ERR " + BARE_REPLIES[verb])
        self.busy = True
        started = time.perf_counter()
        try:
            return await handler(self.server, self, arg)
        except CommandError as exc:
            return encode_error(exc.wire())
        except StorageError as exc:
            log.error("storage error in %s: %s", verb, exc)
            return encode_error(f"ERR {STORAGE_ERROR}: {exc}")
        except Exception:
            log.exception("internal error in %s from %s", verb, self.peer)
            return encode_error("ERR internal error")
        finally:
            self.busy = False
            self.server.timings.observe(verb, time.perf_counter() - started)

    def _hold(self, reply: bytes | None) -> None:
        if reply:
            self._held.append(reply)
            self._held_size += len(reply)

    def release(self) -> None:
        """Queue the replies held back so far in the server's outbox (written at the loop's
        next pass, with the other connections' replies: :mod:`werk.server.outbox`).

        A command that may wait long calls it first, so that it does not hold back the
        replies of the commands pipelined before it (a worker's ACK before its FETCH)."""
        if self._held:
            held, self._held, self._held_size = self._held, [], 0
            self.server.outbox.put(self.writer, b"".join(held))

    async def _send(self, data: bytes) -> None:
        """Write ``data`` now, after any reply still queued for this connection."""
        self.server.outbox.flush(self.writer)
        if data:
            self.writer.write(data)
        if self.writer.transport.get_write_buffer_size() > UNREAD_REPLIES:
            await self._wait_for_room()

    async def _wait_for_room(self) -> None:
        """Wait until the client has read enough of its replies. One that reads nothing for
        ``WRITE_TIMEOUT`` seconds is cut off, not waited for forever; one that reads slowly
        (a big job over a slow link) is waited for as long as it makes progress.

        Raises:
            TimeoutError: nothing was read for ``WRITE_TIMEOUT`` seconds.
        """
        transport = self.writer.transport
        unread = transport.get_write_buffer_size()
        while True:
            try:
                async with asyncio.timeout(WRITE_TIMEOUT):
                    await self.writer.drain()
                return
            except TimeoutError:
                left, unread = unread, transport.get_write_buffer_size()
                if unread < left:
                    continue
                log.info("closing %s: its replies were not read for %g s", self.peer, WRITE_TIMEOUT)
                raise

    async def _close(self) -> None:
        self.server.outbox.flush(self.writer)
        self.server.release(self)
        # A stopping server removes its links of every process at once (Processes.stop).
        if self.wid and not self.server.stopping:
            try:
                await self.server.processes.disconnect(self.wid)
            except Exception:
                log.exception("could not unregister %s", self.wid)
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass

    def alive(self) -> bool:
        """Whether the client is still connected (it has not closed its side)."""
        return not (self.reader.at_eof() or self.writer.transport.is_closing())

    def abort(self) -> None:
        """Close the socket at once (a reaped process, a forced shutdown)."""
        self.closing = True
        self.writer.transport.abort()
