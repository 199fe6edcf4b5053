"""Shared pieces of the reliability suite: a small raw protocol connection, server RSS,
and starting a ``werk server`` subprocess outside pytest (the full-length ``__main__`` runs).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.helpers import Peer
from werk.protocol.resp import Error, Reply, Simple

OK = Simple("OK")


class Conn(Peer):
    """A raw protocol connection: ``tests.helpers.Peer`` not tracked by a pytest fixture,
    so long runs outside pytest do not accumulate sockets."""

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        super().__init__(host, port, timeout, track=False)

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def pipeline(self, lines: Iterable[str]) -> list[Reply]:
        """Send many lines in one write and read their replies in order."""
        batch = list(lines)
        if not batch:
            return []
        self.send("".join(line + "\r\n" for line in batch))
        return [self.reply() for _ in batch]

    def info(self) -> dict[str, Any]:
        """Return the INFO document."""
        reply = self.call("INFO")
        assert isinstance(reply, bytes), reply
        doc: dict[str, Any] = json.loads(reply)
        return doc


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
