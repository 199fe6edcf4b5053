"""RESP2 as Faktory uses it: the server's replies and the client's line framing.

Clients send plain lines (``VERB args\\r\\n``); the server answers with the RESP2 subset
``+simple``, ``-ERROR``, ``:int`` and ``$bulk`` (``$-1`` for nil). :class:`ReplyReader`
parses replies incrementally and :class:`LineReader` splits command lines, both fed with
whatever bytes arrived, so a read can stop anywhere and resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from werk.errors import LineTooLongError, ProtocolError

CRLF: Final = b"\r\n"
OK: Final = b"+OK\r\n"
NIL: Final = b"$-1\r\n"


def encode_simple(text: str) -> bytes:
    """Encode a simple string reply (``+text``); the text must not contain CR or LF."""
    if "\r" in text or "\n" in text:
        raise ValueError("a simple string cannot hold CR or LF")
    return b"+" + text.encode("utf-8", "replace") + CRLF


def encode_error(text: str) -> bytes:
    """Encode an error reply (``-CODE message``); line breaks in the text become spaces.

    Never fails: a lone surrogate quoted from the input is sent as ``?``.
    """
    flat = text.replace("\r", " ").replace("\n", " ")
    return b"-" + flat.encode("utf-8", "replace") + CRLF


def encode_bulk(data: bytes | None) -> bytes:
    """Encode a bulk string reply, or the nil bulk for ``None``."""
    if data is None:
        return NIL
    return b"$%d\r\n%b\r\n" % (len(data), data)


def encode_int(value: int) -> bytes:
    """Encode an integer reply (``:n``)."""
    return b":%d\r\n" % value


@dataclass(frozen=True, slots=True)
class Simple:
    """A ``+text`` reply."""

    text: str


@dataclass(frozen=True, slots=True)
class Error:
    """A ``-CODE message`` reply; ``text`` holds both, without the dash."""

    text: str


Reply = Simple | Error | bytes | int | None
"""One parsed reply: bulk data is ``bytes``, the nil bulk is ``None``."""


class _NeedData:
    """Marker: the buffer does not hold a whole reply yet."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()


class ReplyReader:
    """Incremental parser of server replies (the client side).

    Feed bytes with :meth:`feed`, then call :meth:`next_reply` until it returns
    :data:`NEED_DATA`.
    """

    def __init__(self, max_bulk: int = 512 * 1024 * 1024) -> None:
        self._buf = bytearray()
        self._max_bulk = max_bulk

    def feed(self, data: bytes) -> None:
        """Append bytes read from the connection."""
        self._buf += data

    def next_reply(self) -> Reply | _NeedData:
        """Return the next complete reply, or :data:`NEED_DATA`."""
        end = self._buf.find(CRLF)
        if end < 0:
            return NEED_DATA
        kind = self._buf[:1]
        head = bytes(self._buf[1:end])
        try:
            if kind == b"+":
                reply: Reply | _NeedData = Simple(head.decode())
            elif kind == b"-":
                reply = Error(head.decode())
            elif kind == b":":
                reply = int(head)
            elif kind == b"$":
                return self._bulk(end, head)
            else:
                raise ProtocolError(f"unexpected reply type {bytes(kind)!r}")
        except ValueError as exc:  # not UTF-8, not an integer
            raise ProtocolError(f"malformed reply {bytes(self._buf[: end + 2])!r}") from exc
        del self._buf[: end + 2]
        return reply

    def _bulk(self, end: int, head: bytes) -> bytes | None | _NeedData:
        try:
            size = int(head)
        except ValueError as exc:
            raise ProtocolError(f"bad bulk length {head!r}") from exc
        if size < 0:
            del self._buf[: end + 2]
            return None
        if size > self._max_bulk:
            raise ProtocolError(f"bulk reply of {size} bytes is over the limit")
        start = end + 2
        if len(self._buf) < start + size + 2:
            return NEED_DATA
        data = bytes(self._buf[start : start + size])
        if self._buf[start + size : start + size + 2] != CRLF:
            raise ProtocolError("bulk reply not terminated by CRLF")
        del self._buf[: start + size + 2]
        return data


class LineReader:
    """Splits a byte stream into command lines (the server side).

    A line ends at LF; a CR before it is dropped, so ``\\r\\n`` and bare ``\\n`` both work.
    A line longer than ``max_line`` raises :class:`LineTooLongError`.
    """

    def __init__(self, max_line: int) -> None:
        self._buf = bytearray()
        self._max_line = max_line
        self._scanned = 0

    def feed(self, data: bytes) -> None:
        """Append bytes read from the connection."""
        self._buf += data

    @property
    def pending(self) -> int:
        """Bytes held of a line not finished yet (0 between lines)."""
        return len(self._buf)

    def next_line(self) -> bytes | None:
        """Return the next complete line without its terminator, or ``None``."""
        end = self._buf.find(b"\n", self._scanned)
        if end < 0:
            self._scanned = len(self._buf)
            if self._scanned > self._max_line:
                raise LineTooLongError(f"line longer than {self._max_line} bytes")
            return None
        if end > self._max_line:
            raise LineTooLongError(f"line longer than {self._max_line} bytes")
        line = bytes(self._buf[:end])
        del self._buf[: end + 1]
        self._scanned = 0
        if line.endswith(b"\r"):
            line = line[:-1]
        return line
