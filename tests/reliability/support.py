"""Shared pieces of the reliability suite: a small raw protocol connection, server RSS,
and starting a ``werk server`` subprocess outside pytest (the full-length ``__main__`` runs).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from werk.protocol.auth import hash_password
from werk.protocol.resp import NEED_DATA, Error, Reply, ReplyReader, Simple

OK = Simple("OK")


class Conn:
    """A raw protocol connection (like ``tests.helpers.Peer``, but not tracked by a pytest
    fixture, so long runs outside pytest do not accumulate sockets)."""

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.reader = ReplyReader()

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes | str) -> None:
        """Send raw bytes (a str is encoded)."""
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def reply(self) -> Reply:
        """Read one reply; ``ConnectionError`` when the server closed the connection."""
        while True:
            item = self.reader.next_reply()
            if item is not NEED_DATA:
                return item  # type: ignore[return-value]
            data = self.sock.recv(262144)
            if not data:
                raise ConnectionError("server closed the connection")
            self.reader.feed(data)

    def call(self, line: str | bytes) -> Reply:
        """Send one command line and return its reply."""
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.reply()

    def pipeline(self, lines: Iterable[str]) -> list[Reply]:
        """Send many lines in one write and read their replies in order."""
        batch = list(lines)
        if not batch:
            return []
        self.send("".join(line + "\r\n" for line in batch))
        return [self.reply() for _ in batch]

    def hello(self, password: str | None = None, **fields: Any) -> Reply:
        """Read ``+HI``, answer HELLO, return the reply."""
        hi = self.reply()
        assert isinstance(hi, Simple) and hi.text.startswith("HI "), hi
        challenge = json.loads(hi.text[3:])
        payload: dict[str, Any] = {"v": 2, **fields}
        if "s" in challenge and password is not None:
            payload["pwdhash"] = hash_password(password, challenge["s"], challenge["i"])
        return self.call("HELLO " + json.dumps(payload))

    def info(self) -> dict[str, Any]:
        """Return the INFO document."""
        reply = self.call("INFO")
        assert isinstance(reply, bytes), reply
        doc: dict[str, Any] = json.loads(reply)
        return doc

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


def connect(host: str, port: int, timeout: float = 10.0) -> Conn:
    """Open a connection and say HELLO (no password)."""
    conn = Conn(host, port, timeout)
    reply = conn.hello()
    if reply != OK:
        conn.close()
        raise ConnectionError(f"HELLO refused: {reply!r}")
    return conn


def is_error(reply: Reply, text: str = "") -> bool:
    """Return True for an error reply that contains ``text``."""
    return isinstance(reply, Error) and text in reply.text


def rss_mb(pid: int) -> float:
    """Return a process's resident set size in MiB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def compact(value: Any) -> str:
    """JSON without spaces (MUTATE lines are split on spaces by other servers)."""
    return json.dumps(value, separators=(",", ":"))
