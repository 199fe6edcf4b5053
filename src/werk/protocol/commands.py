"""The command grammar: verbs, splitting a line into verb and argument, the handshake payloads.

A command line is ``VERB`` or ``VERB argument``; the verb is matched case-sensitively.
``HELLO`` is only valid as the first line of a connection.
"""

from __future__ import annotations

import json
from typing import Any, Final

HELLO: Final = "HELLO"
END: Final = "END"
PUSH: Final = "PUSH"
PUSHB: Final = "PUSHB"
FETCH: Final = "FETCH"
ACK: Final = "ACK"
FAIL: Final = "FAIL"
BEAT: Final = "BEAT"
INFO: Final = "INFO"
FLUSH: Final = "FLUSH"
MUTATE: Final = "MUTATE"
QUEUE: Final = "QUEUE"
BATCH: Final = "BATCH"
TRACK: Final = "TRACK"
LIMIT: Final = "LIMIT"
RESULT: Final = "RESULT"
JOBS: Final = "JOBS"
PROCESSES: Final = "PROCESSES"

VERBS: Final = frozenset(
    {
        END,
        PUSH,
        PUSHB,
        FETCH,
        ACK,
        FAIL,
        BEAT,
        INFO,
        FLUSH,
        MUTATE,
        QUEUE,
        BATCH,
        TRACK,
        LIMIT,
        RESULT,
        JOBS,
        PROCESSES,
    }
)

PROTOCOL_VERSION: Final = 2


def split_command(line: bytes) -> tuple[str, bytes]:
    """Split a command line into its verb and the argument bytes after the first space."""
    verb, _, rest = line.partition(b" ")
    return verb.decode("utf-8", "replace"), rest


def compact_json(value: Any) -> str:
    """Encode JSON with no spaces, as Faktory's peers expect (``+HI``, MUTATE)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def hi_payload(iterations: int | None = None, salt: str | None = None) -> str:
    """Return the text of the server's ``+HI`` greeting.

    ``i`` and ``s`` appear, in that order, only when a password is configured.
    """
    if iterations is None or salt is None:
        return f'HI {{"v":{PROTOCOL_VERSION}}}'
    return f'HI {{"v":{PROTOCOL_VERSION},"i":{iterations},"s":"{salt}"}}'


def sendable(text: str) -> str:
    """``text`` as UTF-8 can carry it: each lone surrogate (``os.fsdecode`` makes them of
    undecodable bytes; no UTF-8 encodes them) becomes its escape, the six characters
    ``\\udcff``; any other text is returned as it is."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text


def encode_command(verb: str, argument: str | bytes | None = None) -> bytes:
    """Encode one command line for the wire (the client side)."""
    if argument is None:
        return verb.encode() + b"\r\n"
    arg = argument.encode() if isinstance(argument, str) else argument
    if b"\n" in arg or b"\r" in arg:
        raise ValueError("a command argument cannot contain a line break")
    return verb.encode() + b" " + arg + b"\r\n"
