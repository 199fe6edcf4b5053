"""Every error reply of PROTOCOL.md §1.5, and bad input that must lose nothing."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

import pytest

from tests.helpers import Peer, ServerProcess, error_text, push_line
from werk.protocol.resp import Simple


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("NOPE", "ERR unknown command NOPE"),
        ("push {}", "ERR unknown command push"),
        ("PUSH {", "ERR invalid JSON: "),
        ('PUSH {"jobtype":"T","args":[]}', "ERR jobs must have a reasonable jid parameter"),
        ('PUSH {"jid":"abcdefgh1","args":[]}', "ERR jobs must have a jobtype parameter"),
        ('PUSH {"jid":"abcdefgh1","jobtype":"T"}', "ERR jobs must have an args parameter"),
        (
            'PUSH {"jid":"abcdefgh1","jobtype":"T","args":[],"reserve_for":86401}',
            "ERR jobs cannot be reserved for more than one day",
        ),
        (
            'PUSH {"jid":"abcdefgh1","jobtype":"T","args":[],"at":"soon"}',
            "ERR invalid timestamp for 'at': \"soon\": ",
        ),
        (
            'PUSH {"jid":"abcdefgh1","jobtype":"T","args":[],"queue":"a b"}',
            'ERR cannot get "a b" queue: queue names must match \\A[a-zA-Z0-9._-]+\\z',
        ),
        ("PUSHB [1", "ERR invalid JSON: "),
        ('ACK {"jid":1}', 'ERR invalid ACK {"jid":1}'),
        ("ACK nope", "ERR invalid ACK nope"),
        ("FAIL nope", "ERR invalid FAIL nope"),
        ('FAIL {"message":"x"}', "ERR missing JID"),
        ('FAIL {"jid":"nosuchjob1"}', "ERR Job not found nosuchjob1"),
        ("BEAT nope", "ERR invalid BEAT nope"),
        ('BEAT {"wid":"ghost"}', "ERR unknown worker ghost"),
        ("FETCH", "ERR must call fetch with at least one queue"),
        ("MUTATE nope", "ERR invalid format"),
        ('MUTATE {"cmd":"kill","target":"nowhere"}', "ERR invalid target for mutation command"),
        ('MUTATE {"cmd":"explode","target":"dead"}', "ERR unknown mutate operation"),
        ("QUEUE FROB a", "ERR no such QUEUE subcommand: FROB"),
        ("QUEUE LATENCY *", "ERR QUEUE LATENCY does not support wildcards"),
        ("QUEUE PAUSE", "ERR QUEUE PAUSE needs at least one queue name"),
        ("ACK", "ERR invalid ACK "),
        ("BATCH NEW {}", "ERR a batch needs a success or complete callback"),
        ("BATCH FROB x", "ERR no such BATCH subcommand: FROB"),
        ("BATCH STATUS b-nothing", "ERR no such batch b-nothing"),
        ("TRACK FROB x", "ERR no such TRACK subcommand: FROB"),
    ],
)
def test_error_replies(flushed_peer: Peer, line: str, error: str) -> None:
    text = error_text(flushed_peer.call(line))
    assert text.startswith(error), text
    # The connection carries on after every error.
    assert flushed_peer.call(push_line("after-err1")) == Simple("OK")


def test_line_over_the_limit_errors_then_closes(
    werk_server_factory: Callable[..., ServerProcess],
) -> None:
    server = werk_server_factory(extra_args=["--max-line", "1000"])
    conn = Peer(server.host, server.port)
    other = Peer(server.host, server.port)
    assert conn.hello() == Simple("OK") and other.hello() == Simple("OK")
    conn.send(push_line("big-00001", args=["x" * 5000]) + "\r\n")
    assert error_text(conn.reply()) == "ERR line longer than 1000 bytes"
    assert conn.closed()
    assert other.call(push_line("small-001")) == Simple("OK")


def test_client_vanishing_mid_command_loses_nothing(werk_server: ServerProcess, peer: Peer) -> None:
    assert peer.call(push_line("kept-0001")) == Simple("OK")
    gone = Peer(werk_server.host, werk_server.port)
    assert gone.hello() == Simple("OK")
    gone.send('PUSH {"jid":"half-0001","jobtype":"T","ar')
    gone.sock.shutdown(socket.SHUT_RDWR)
    gone.close()
    raw = peer.call("INFO")
    assert isinstance(raw, bytes)
    assert json.loads(raw)["faktory"]["queues"] == {"default": 1}
