"""Port numbers and ``host:port`` text, checked one way for every option that takes them.

Server bindings (``-b``, ``-w``, ``[werk] binding``), the ``[statsd]`` location, client
URLs (``tcp://host:port``) and storage URLs all read their port here, so a port outside
1-65535 is refused with the same message everywhere instead of being wrapped modulo 65536
by the socket layer (``73219`` would listen on 7683). Port 0 is accepted only where it is
documented to pick a free port (a server binding).
"""

from __future__ import annotations

import re
from typing import Final

MAX_PORT: Final = 65535
_DIGITS: Final = re.compile(r"[0-9]+")


def parse_port(text: str, *, free: bool = False) -> int:
    """Return the port number written as ``text`` (ASCII digits only).

    Args:
        text: the port as written, without the ``host:`` part.
        free: accept 0, which picks a free port (server bindings only).

    Raises:
        ValueError: the text is empty, not a whole number, or outside 1-65535 (0-65535
            with ``free``); the message says which range and quotes the text.
    """
    lowest = 0 if free else 1
    allowed = "0-65535 (0 picks a free port)" if free else "1-65535"
    if not text:
        raise ValueError(f"the port is missing: write host:port with a port {allowed}")
    if not _DIGITS.fullmatch(text) or not lowest <= int(text) <= MAX_PORT:
        raise ValueError(f"port must be a whole number {allowed}, not {text!r}")
    return int(text)


def split_host_port(text: str) -> tuple[str, str, str]:
    """Split ``host:port``, ``[v6]:port`` or ``:port`` into ``(host, sep, port)``.

    ``sep`` is ``":"`` when a port part is present, ``""`` when the text is a bare host;
    brackets around an IPv6 host are removed.
    """
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if bracket and (not rest or rest.startswith(":")):
            return host, rest[:1], rest[1:]
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, "", ""
    return host, sep, port


def netloc_port(netloc: str) -> int | None:
    """Return the port of a URL's ``netloc`` (``user:pw@host:port``), ``None`` if absent.

    Raises:
        ValueError: a port is written (``host:`` included) but is not 1-65535.
    """
    _, sep, port = split_host_port(netloc.rpartition("@")[2])
    return parse_port(port) if sep else None
