"""Slow web UI clients: a connection that sends its request head a byte at a time is
closed once :data:`werk.webui.server.HEAD_TIMEOUT` has passed (uvicorn kept it open for
ever, holding a file descriptor the work port needs too); a request whose head came is
answered however long it takes, and a client that keeps up is served."""

from __future__ import annotations

import socket
import time

import pytest

from tests.badinput.conftest import Live
from tests.conftest import SQLITE_ONLY
from werk.webui import server as webserver


def dribble(port: int, head: bytes, seconds: float) -> tuple[bool, bytes]:
    """Send ``head`` a byte at a time over ``seconds`` at most; return whether the server
    closed the connection meanwhile, and what it sent."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    got = b""
    deadline = time.monotonic() + seconds
    try:
        for byte in head:
            if time.monotonic() > deadline:
                break
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return True, got
            sock.settimeout(0.1)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return True, got
            if not data:
                return True, got
            got += data
        sock.settimeout(3)
        try:
            got += sock.recv(65536)
        except OSError:
            pass
        return False, got
    finally:
        sock.close()


@SQLITE_ONLY
def test_a_dribbled_request_head_is_cut_off(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webserver, "HEAD_TIMEOUT", 1.0)
    port = live.server.web_port
    head = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 200 + b"\r\n\r\n"
    started = time.monotonic()
    closed, got = dribble(port, head, seconds=8)
    assert closed and got == b"", got
    assert time.monotonic() - started < 4
    # A client that sends its head at once is served, and so is one within the time.
    assert live.get("/health").status_code == 200
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        time.sleep(0.5)
        sock.sendall(b"Host: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")


@SQLITE_ONLY
def test_a_kept_alive_connection_that_then_dribbles_is_cut_off(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webserver, "HEAD_TIMEOUT", 1.0)
    sock = socket.create_connection(("127.0.0.1", live.server.web_port), timeout=5)
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        closed = False
        for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"b" * 100:
            try:
                sock.sendall(bytes([byte]))
                sock.settimeout(0.1)
                if sock.recv(65536) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:
                closed = True
                break
        assert closed and time.monotonic() - started < 4
    finally:
        sock.close()
