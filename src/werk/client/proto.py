"""The client's sans-IO protocol core: method calls in, bytes out; bytes in, typed results out.

:class:`ClientProtocol` owns the reply parser and the handshake state machine, and builds a
:class:`Call` for every command: the bytes to send plus the function that turns the
command's one reply into a Python value (or raises the mapped exception). The blocking
:class:`~werk.client.Client` and the asyncio :class:`~werk.client.AsyncClient` are thin
shells that move those bytes; neither knows the wire format.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import os
import re
import secrets
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from typing import Any, Generic, TypeVar

from werk.errors import AuthenticationError, ProtocolError, error_from_wire
from werk.protocol import commands as verbs
from werk.protocol.auth import hash_password
from werk.protocol.commands import PROTOCOL_VERSION, compact_json, encode_command, sendable
from werk.protocol.resp import NEED_DATA, Error, Reply, ReplyReader, Simple, _NeedData

T = TypeVar("T")
log = logging.getLogger("werk.client")

_OK = Simple("OK")
EXPECT_RESERVED = b',"expect":"reserved"'
"""The ACK field (Werk's extension) asking a Werk server to refuse the ACK of a job that held
no reservation any more, instead of Faktory's ``+OK``; a Faktory server ignores it."""


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One command: the bytes to write and the parser of its single reply."""

    data: bytes
    parse: Callable[[Reply], T]
    wait: float = 0.0
    """Seconds the server may take on purpose before it replies (a blocking RESULT):
    connections add them to their reply timeout."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who this connection says it is in HELLO.

    Attributes:
        wid: the worker process id; ``None`` for producers (only consumers send one).
        hostname: shown in the Web UI.
        pid: shown in the Web UI.
        labels: badges shown on the Busy page.
        username: sent as ``username`` (proxies route on it).
    """

    wid: str | None = None
    hostname: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    labels: tuple[str, ...] = ()
    username: str | None = None


def new_wid() -> str:
    """Return a new random worker id (16 lower-case hex characters)."""
    return secrets.token_hex(8)


class State(enum.Enum):
    """Where a connection is in its life: greeting, hello sent, ready, closed."""

    AWAIT_HI = "await_hi"
    AWAIT_OK = "await_ok"
    READY = "ready"
    CLOSED = "closed"


def expect_ok(reply: Reply) -> None:
    """Accept ``+OK``; raise the mapped exception for ``-CODE``; anything else is a bug."""
    if isinstance(reply, Simple) and reply.text == "OK":  # as ``== _OK``, one call less
        return
    raise _unexpected(reply)


def _unexpected(reply: Reply) -> Exception:
    if isinstance(reply, Error):
        return error_from_wire(reply.text)
    return ProtocolError(f"unexpected reply {reply!r}")


def _bulk(reply: Reply) -> bytes:
    if isinstance(reply, bytes):
        return reply
    raise _unexpected(reply)


def _json_bulk(reply: Reply) -> Any:
    # Decoded here: json.loads(bytes) would first guess the encoding (UTF-8 is the wire's).
    return json.loads(_bulk(reply).decode("utf-8", "surrogatepass"))


def _json_object(reply: Reply) -> dict[str, Any]:
    value = _json_bulk(reply)
    if not isinstance(value, dict):
        raise ProtocolError(f"expected a JSON object, got {value!r}")
    return value


def _int(reply: Reply) -> int:
    if isinstance(reply, int) and not isinstance(reply, bool):
        return reply
    raise _unexpected(reply)


def _text_bulk(reply: Reply) -> str:
    if isinstance(reply, Simple):
        return reply.text
    return _bulk(reply).decode()


def _names(
    method: str, names: Sequence[str], first: str = "", noun: str = "names"
) -> Sequence[str]:
    """Return ``names`` if each is a str; a list passed as one of them (``fetch(["q"])``,
    the shape ``Worker(queues=[...])`` takes) is refused with how to call ``method``.

    Raises:
        TypeError: a name is not a str.
    """
    for name in names:
        if not isinstance(name, str):
            lead = f"{first}, " if first else ""
            raise TypeError(
                f"{method}() takes {noun} as separate str arguments: {method}({lead}'a', 'b'),"
                f" or {method}({lead}*{noun}) for a list; got a {type(name).__name__}: {name!r}"
            )
    return names


def parse_job(reply: Reply) -> dict[str, Any] | None:
    """Parse a FETCH reply: the job as a dict, or ``None`` when no job came (nil or empty)."""
    if reply is None or reply == b"":
        return None
    return _json_object(reply)


def parse_beat(reply: Reply) -> str | None:
    """Parse a BEAT reply: ``None`` for ``+OK``, else the state the server asks for.

    The state arrives as bulk (or, in old servers, simple) JSON ``{"state":"quiet"}``.
    """
    if reply == _OK:
        return None
    text = _text_bulk(reply)
    try:
        state = json.loads(text).get("state")
    except (ValueError, AttributeError) as exc:
        raise ProtocolError(f"unexpected BEAT reply {text!r}") from exc
    return str(state) if state else None


def job_json(jobs: Sequence[Mapping[str, Any]]) -> bytes:
    """Encode a list of jobs as compact UTF-8 JSON.

    Raises:
        TypeError: a job holds a value JSON cannot (a ``datetime``, a set, an object,
            NaN or an infinity) or a string UTF-8 cannot (one with a lone surrogate, as
            ``os.fsdecode`` makes of undecodable bytes): the message names the job's
            jobtype and jid and where the value is, such as ``args[0]``, instead of json's
            bare "Object of type datetime is not JSON serializable".
    """
    try:
        # No NaN or infinity: a server would refuse the whole PUSH as invalid JSON.
        return json.dumps(jobs, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        for job in jobs:
            where = _unencodable(job, "")
            if where is not None:
                raise TypeError(
                    f"job {job.get('jobtype')!r} (jid {job.get('jid')!r}) cannot be sent:"
                    f" {where[0] or 'the job'} is {where[1]}"
                ) from exc
        raise TypeError(f"jobs cannot be sent as JSON: {exc}") from exc


_NOT_JSON = ", which JSON cannot hold (pass a string, a number, a list or a dict of them)"
_NOT_UTF8 = (
    ", which UTF-8 cannot encode (os.fsdecode makes them of undecodable bytes; send such"
    " text escaped, as text.encode('utf-8', 'backslashreplace').decode() does)"
)
_SURROGATE = re.compile("[\ud800-\udfff]")


def _unencodable(value: Any, path: str) -> tuple[str, str] | None:
    """Return ``(path, what is wrong)`` of the first value JSON or UTF-8 cannot hold, or
    ``None``."""
    if isinstance(value, str):
        bad = _lone_surrogate(value)
        return None if bad is None else (path, f"a str with the lone surrogate {bad}{_NOT_UTF8}")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str | int | float | bool) and key is not None:
                return f"{path}[{key!r}]", f"a key of type {type(key).__name__}{_NOT_JSON}"
            if isinstance(key, str) and (bad := _lone_surrogate(key)) is not None:
                return f"{path}[{key!r}]", f"a key with the lone surrogate {bad}{_NOT_UTF8}"
            found = _unencodable(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _unencodable(item, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return path, f"{value!r}, which JSON cannot hold (no NaN or infinity)"
    if value is None or isinstance(value, int | float | bool):
        return None
    return path, f"a {type(value).__name__}{_NOT_JSON}"


def _lone_surrogate(text: str) -> str | None:
    """The first lone surrogate of ``text`` as ``U+DCFF``, or ``None``."""
    found = _SURROGATE.search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"


class ClientProtocol:
    """The protocol state of one connection, with no I/O.

    Feed what the socket delivered with :meth:`feed` and take replies with
    :meth:`next_reply`. Until :attr:`state` is ``READY``, pass each reply to
    :meth:`handshake`, which returns the bytes to send (the HELLO line) or ``None`` when
    the handshake is complete. After that, each command method returns a :class:`Call`.

    Args:
        identity: what HELLO says about this connection.
        password: the server password, if any.
        server: the server's address (a URL, password masked) that a refused password's
            :class:`~werk.errors.AuthenticationError` names; ``""`` names none.
    """

    def __init__(
        self, identity: Identity | None = None, password: str | None = None, server: str = ""
    ) -> None:
        self.identity = identity or Identity()
        self.password = password
        self.server = server
        self.state = State.AWAIT_HI
        self.server_version: int | None = None
        self._reader = ReplyReader()

    # -- bytes in ---------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Hand over bytes read from the connection."""
        self._reader.feed(data)

    def next_reply(self) -> Reply | _NeedData:
        """Return the next whole reply, or :data:`werk.protocol.resp.NEED_DATA`."""
        return self._reader.next_reply()

    # -- the handshake ----------------------------------------------------------------------

    def handshake(self, reply: Reply) -> bytes | None:
        """Advance the handshake with one server reply.

        Returns:
            The HELLO line to send after ``+HI``; ``None`` once ``+OK`` made us ready.

        Raises:
            AuthenticationError: a password is needed and missing, or it was wrong (``the
                server tcp://:***@host:7419 refused the password: Invalid password``: the
                message names the server given as ``server``).
            ProtocolError: the server sent something that is not a handshake reply.
        """
        if self.state is State.AWAIT_HI:
            if not (isinstance(reply, Simple) and reply.text.startswith("HI ")):
                raise (
                    _unexpected(reply)
                    if isinstance(reply, Error)
                    else ProtocolError(f"expected +HI, got {reply!r}")
                )
            hello = self._hello(reply.text[3:])
            self.state = State.AWAIT_OK
            return encode_command(verbs.HELLO, compact_json(hello))
        if self.state is State.AWAIT_OK:
            self.state = State.CLOSED
            try:
                expect_ok(reply)
            except AuthenticationError as exc:
                raise AuthenticationError(
                    f"{self._the_server()} refused the password: {exc}"
                ) from exc
            self.state = State.READY
            return None
        raise ProtocolError(f"handshake already finished (state {self.state.value})")

    def _hello(self, greeting: str) -> dict[str, Any]:
        try:
            hi = json.loads(greeting)
        except ValueError as exc:
            raise ProtocolError(f"bad +HI payload {greeting!r}") from exc
        version = hi.get("v")
        self.server_version = version if isinstance(version, int) else None
        if isinstance(version, int) and version > PROTOCOL_VERSION:
            log.warning("server speaks protocol v%d, this client v%d", version, PROTOCOL_VERSION)
        ident = self.identity
        hello: dict[str, Any] = {
            "hostname": ident.hostname,
            "pid": ident.pid,
            "labels": list(ident.labels),
            "v": PROTOCOL_VERSION,
        }
        if ident.wid:
            hello["wid"] = ident.wid
        if ident.username:
            hello["username"] = ident.username
        salt = hi.get("s")
        if salt is not None:
            if not self.password:
                self.state = State.CLOSED
                hint = (
                    " (the URL has a user name and no password: the password goes after a"
                    " colon, as in tcp://:secret@host:port)"
                    if ident.username
                    else ""
                )
                raise AuthenticationError(
                    f"{self._the_server()} requires a password and none was given{hint}"
                )
            hello["pwdhash"] = hash_password(self.password, str(salt), int(hi.get("i") or 1))
        return hello

    def _the_server(self) -> str:
        return f"the server {self.server}" if self.server else "the server"

    # -- commands ---------------------------------------------------------------------------

    def push(self, job: Mapping[str, Any]) -> Call[None]:
        """``PUSH {job}`` → ``+OK``.

        Raises:
            TypeError: the job holds a value JSON cannot (naming the job and where).
        """
        return Call(encode_command(verbs.PUSH, job_json([job])[1:-1]), expect_ok)

    def push_bulk(self, jobs: Iterable[Mapping[str, Any]]) -> Call[dict[str, str]]:
        """``PUSHB [jobs]`` → bulk JSON ``{jid: error}`` for the jobs that were refused.

        Raises:
            TypeError: a job holds a value JSON cannot (naming the job and where).
        """
        data = encode_command(verbs.PUSHB, job_json(list(jobs)))
        return Call(data, _json_object)

    def fetch(self, queues: Sequence[str]) -> Call[dict[str, Any] | None]:
        """``FETCH q1 q2 ...`` → the job, or ``None`` after the server's ~2 s wait."""
        if not queues:
            raise ValueError("fetch needs at least one queue")
        return Call(encode_command(verbs.FETCH, " ".join(_names("fetch", queues))), parse_job)

    def ack(self, jid: str, result: Any = None, *, reserved: bool = False) -> Call[None]:
        """``ACK {"jid":...}`` → ``+OK``; with a ``result`` (any JSON value but null),
        ``ACK {"jid":...,"result":...}``, Werk's results extension. ``reserved`` adds
        ``"expect":"reserved"`` (a worker's ACK): a Werk server then answers
        ``-ERR Job not found <jid>`` when the job held no reservation any more.

        Raises:
            TypeError: ``result`` cannot be encoded as JSON, or holds a string with a lone
                surrogate, which UTF-8 cannot encode.
        """
        if result is None:
            # json.dumps(jid) without its two Python calls (every job is ACKed).
            tail = EXPECT_RESERVED + b"}\r\n" if reserved else b"}\r\n"
            data = b'ACK {"jid":' + encode_basestring_ascii(jid).encode() + tail
            return Call(data, expect_ok)
        try:
            payload = {"jid": jid, "result": result}
            if reserved:
                payload["expect"] = "reserved"
            data = compact_json(payload).encode()
        except UnicodeEncodeError as exc:
            char = ord(exc.object[exc.start])
            raise TypeError(
                f"the result holds the lone surrogate U+{char:04X}, which UTF-8 cannot encode"
            ) from exc
        return Call(encode_command(verbs.ACK, data), expect_ok)

    def ack_encoded(self, jid: str, result: bytes, *, reserved: bool = False) -> Call[None]:
        """``ACK {"jid":...,"result":...}`` with ``result`` already encoded as JSON (by
        :func:`werk.client.results.encode_result`, which checks it as the server does);
        ``reserved`` as for :meth:`ack`."""
        tail = EXPECT_RESERVED + b"}" if reserved else b"}"
        data = b'{"jid":' + encode_basestring_ascii(jid).encode() + b',"result":' + result + tail
        return Call(encode_command(verbs.ACK, data), expect_ok)

    def fail(
        self,
        jid: str,
        errtype: str,
        message: str,
        backtrace: Sequence[str] = (),
        *,
        retry_in: int | None = None,
        dead: bool = False,
    ) -> Call[None]:
        """``FAIL {"jid","errtype","message","backtrace"}`` → ``+OK``; with Werk's
        ``retry_in`` (seconds) and ``dead`` fields when given (a Faktory server ignores
        them). A lone surrogate in ``errtype``, ``message`` or a backtrace line (as
        ``os.fsdecode`` makes of undecodable bytes), which UTF-8 cannot carry, is sent as
        its escape, the text ``\\udcff`` (:func:`~werk.protocol.commands.sendable`)."""
        payload: dict[str, Any] = {
            "jid": jid,
            "errtype": sendable(errtype),
            "message": sendable(message),
            "backtrace": [sendable(line) for line in backtrace],
        }
        if retry_in is not None:
            payload["retry_in"] = retry_in
        if dead:
            payload["dead"] = True
        return Call(encode_command(verbs.FAIL, compact_json(payload)), expect_ok)

    def beat(
        self, wid: str, current_state: str | None = None, rss_kb: int | None = None
    ) -> Call[str | None]:
        """``BEAT {"wid",...}`` → ``None`` (running) or ``"quiet"``/``"terminate"``."""
        payload: dict[str, Any] = {"wid": wid}
        if current_state:
            payload["current_state"] = current_state
        if rss_kb is not None:
            payload["rss_kb"] = rss_kb
        return Call(encode_command(verbs.BEAT, compact_json(payload)), parse_beat)

    def info(self) -> Call[dict[str, Any]]:
        """``INFO`` → the server's state document."""
        return Call(encode_command(verbs.INFO), _json_object)

    def flush(self) -> Call[None]:
        """``FLUSH`` → ``+OK`` (deletes every job)."""
        return Call(encode_command(verbs.FLUSH), expect_ok)

    def mutate(self, cmd: str, target: str, filter: Mapping[str, Any] | None = None) -> Call[None]:
        """``MUTATE {"cmd","target","filter"}`` → ``+OK``."""
        payload: dict[str, Any] = {"cmd": cmd, "target": target}
        if filter is not None:
            payload["filter"] = dict(filter)
        return Call(encode_command(verbs.MUTATE, compact_json(payload)), expect_ok)

    def delete_queued(self, queue: str, jids: Sequence[str]) -> Call[int]:
        """Werk's ``MUTATE {"cmd":"discard","target":"queue","queue","filter":{"jids"}}``
        → the number of jobs deleted."""
        if not jids:
            raise ValueError("delete_queued needs at least one jid")
        jids = _names("delete_queued", jids, first="queue", noun="jids")
        payload = {"cmd": "discard", "target": "queue", "queue": queue, "filter": {"jids": jids}}
        return Call(encode_command(verbs.MUTATE, compact_json(payload)), _int)

    def queue(self, subcommand: str, names: Sequence[str]) -> Call[None]:
        """``QUEUE PAUSE|RESUME|REMOVE names...`` → ``+OK``."""
        if not names:
            raise ValueError("QUEUE needs at least one queue name (or '*')")
        names = _names(f"{subcommand.lower()}_queues", names)
        return Call(encode_command(verbs.QUEUE, " ".join([subcommand, *names])), expect_ok)

    def queue_latency(self, names: Sequence[str]) -> Call[dict[str, float]]:
        """``QUEUE LATENCY names...`` → ``{queue: seconds}``."""
        if not names:
            raise ValueError("QUEUE LATENCY needs at least one queue name")
        names = _names("queue_latency", names)
        return Call(encode_command(verbs.QUEUE, " ".join(["LATENCY", *names])), _json_object)

    def batch_new(self, batch: Mapping[str, Any]) -> Call[str]:
        """``BATCH NEW {batch}`` → the new batch id."""
        return Call(encode_command(verbs.BATCH, "NEW " + compact_json(batch)), _text_bulk)

    def batch_open(self, bid: str) -> Call[str]:
        """``BATCH OPEN bid`` → the batch id."""
        return Call(encode_command(verbs.BATCH, "OPEN " + bid), _text_bulk)

    def batch_commit(self, bid: str) -> Call[None]:
        """``BATCH COMMIT bid`` → ``+OK``."""
        return Call(encode_command(verbs.BATCH, "COMMIT " + bid), expect_ok)

    def batch_status(self, bid: str) -> Call[dict[str, Any]]:
        """``BATCH STATUS bid`` → the batch's status document."""
        return Call(encode_command(verbs.BATCH, "STATUS " + bid), _json_object)

    def track_set(self, update: Mapping[str, Any]) -> Call[None]:
        """``TRACK SET {"jid",...}`` → ``+OK``."""
        return Call(encode_command(verbs.TRACK, "SET " + compact_json(update)), expect_ok)

    def track_get(self, jid: str) -> Call[dict[str, Any]]:
        """``TRACK GET jid`` → the job's tracking document."""
        return Call(encode_command(verbs.TRACK, "GET " + jid), _json_object)

    def result(self, jid: str, timeout: float = 0.0) -> Call[dict[str, Any]]:
        """``RESULT {"jid":...,"timeout":...}`` → the job's state document (Werk's results
        extension); the server waits up to ``timeout`` seconds for the job to end."""
        payload: dict[str, Any] = {"jid": jid}
        if timeout > 0:
            payload["timeout"] = timeout
        return Call(encode_command(verbs.RESULT, compact_json(payload)), _json_object, timeout)

    def end(self) -> bytes:
        """``END``: the bytes that close the connection politely (no reply comes)."""
        self.state = State.CLOSED
        return encode_command(verbs.END)


__all__ = [
    "NEED_DATA",
    "Call",
    "ClientProtocol",
    "Identity",
    "State",
    "expect_ok",
    "new_wid",
    "parse_beat",
    "parse_job",
]
