"""The handshake: +HI, HELLO, passwords (iterated and legacy), deadlines, limits."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from tests.helpers import Peer, ServerProcess, error_text
from werk.protocol.auth import hash_password
from werk.protocol.resp import NEED_DATA, Simple


def test_hi_without_password_then_hello(peer_factory: Callable[[], Peer]) -> None:
    conn = peer_factory()
    assert conn.reply() == Simple('HI {"v":2}')
    hello = {"hostname": "h1", "wid": "w1", "pid": 1, "labels": ["python"], "v": 2}
    assert conn.call("HELLO " + json.dumps(hello)) == Simple("OK")


def test_password_challenge_and_iterated_hash(
    werk_server_factory: Callable[..., ServerProcess],
) -> None:
    server = werk_server_factory(password="s3cret")
    conn = Peer(server.host, server.port)
    hi = conn.reply()
    assert isinstance(hi, Simple)
    challenge = json.loads(hi.text[3:])
    assert list(challenge) == ["v", "i", "s"] and " " not in hi.text[3:]
    assert 4000 <= challenge["i"] <= 8095
    pwdhash = hash_password("s3cret", challenge["s"], challenge["i"])
    assert conn.call("HELLO " + json.dumps({"v": 2, "pwdhash": pwdhash})) == Simple("OK")
    assert conn.call("INFO") is not None


def test_legacy_client_hashes_once(werk_server_factory: Callable[..., ServerProcess]) -> None:
    server = werk_server_factory(password="s3cret")
    conn = Peer(server.host, server.port)
    hi = conn.reply()
    assert isinstance(hi, Simple)
    salt = json.loads(hi.text[3:])["s"]
    # No "v": the server checks a single SHA-256 round, as the cdrx client sends.
    line = "HELLO " + json.dumps({"pwdhash": hash_password("s3cret", salt, 1)})
    assert conn.call(line) == Simple("OK")


def test_wrong_password_is_refused_and_closed(
    werk_server_factory: Callable[..., ServerProcess],
) -> None:
    server = werk_server_factory(password="s3cret")
    conn = Peer(server.host, server.port)
    assert error_text(conn.hello(password="wrong")) == "ERR Invalid password"
    assert conn.closed()
    missing = Peer(server.host, server.port)
    assert error_text(missing.hello(password=None)) == "ERR Invalid password"
    good = Peer(server.host, server.port)
    assert good.hello(password="s3cret") == Simple("OK")


def test_first_line_not_hello_closes_silently(peer_factory: Callable[[], Peer]) -> None:
    for first in ("INFO\r\n", "HELLO not-json\r\n", "\x16\x03\x01\x00\x05hello\r\n"):
        conn = peer_factory()
        conn.reply()
        conn.send(first)
        assert conn.closed()
        assert conn.reader.next_reply() is NEED_DATA  # no reply came before the close


def test_silent_client_is_dropped_after_the_deadline(peer_factory: Callable[[], Peer]) -> None:
    conn = peer_factory()
    conn.reply()
    started = time.monotonic()
    assert conn.closed(timeout=5.0)
    assert 1.5 < time.monotonic() - started < 4.0


def test_connection_limit(werk_server_factory: Callable[..., ServerProcess]) -> None:
    server = werk_server_factory(extra_args=["--max-connections", "2"])
    first, second = Peer(server.host, server.port), Peer(server.host, server.port)
    assert first.hello() == Simple("OK") and second.hello() == Simple("OK")
    third = Peer(server.host, server.port)
    # As Faktory: the handshake completes, then the error comes and the server closes.
    assert third.hello() == Simple("OK")
    assert error_text(third.reply()) == "ERR too many connections: 2"
    assert third.closed()
    first.close()
    time.sleep(0.2)
    fourth = Peer(server.host, server.port)
    assert fourth.hello() == Simple("OK")
