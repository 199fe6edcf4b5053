"""A work-protocol client that begins a command line and never finishes it (a byte now and
then) is told so and closed once :data:`werk.server.connection.LINE_TIMEOUT` has passed
since the line's first byte; a line that comes in parts within the time is served, and a
connection silent between lines stays open."""

from __future__ import annotations

import time

import pytest

from tests.badinput.conftest import Live
from tests.conftest import SQLITE_ONLY
from werk.protocol.resp import Error
from werk.server import connection


@SQLITE_ONLY
def test_a_dribbled_line_is_refused_and_the_connection_closed(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection, "LINE_TIMEOUT", 1.0)
    # Given a client that sends "INF", then a byte now and then, never the end of the line
    peer = live.peer()
    started = time.monotonic()
    peer.send(b"INF")
    for _ in range(3):
        time.sleep(0.4)
        try:
            peer.send(b"O")
        except OSError:
            break
    # Then about a second after the first byte it is told why, and closed
    assert peer.reply() == Error("ERR a command line was not finished within 1 s")
    assert time.monotonic() - started < 3
    with pytest.raises((ConnectionError, EOFError, OSError)):
        peer.call("INFO")


@SQLITE_ONLY
def test_lines_in_parts_and_silence_between_lines_are_fine(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection, "LINE_TIMEOUT", 1.0)
    peer = live.peer()
    for _ in range(3):  # each line finished within the time, in two parts
        peer.send(b"INF")
        time.sleep(0.5)
        peer.send(b"O\r\n")
        assert isinstance(peer.reply(), bytes)
        time.sleep(1.2)  # silent between lines for longer than LINE_TIMEOUT
    assert isinstance(peer.call("INFO"), bytes)
