"""Kind 4 of issue 13: replies match Faktory 1.10's where Werk does not document otherwise.

docs/protocol.md ("Differences from Faktory") lists every deliberate difference.
"""

from __future__ import annotations

import json
import time

from tests.badinput.conftest import OK, fetch, snapshot
from tests.helpers import Peer, ServerProcess, error_text, push_line

NO_JSON = "ERR invalid JSON: unexpected end of JSON input"


BARE_AND_MISTYPED = [
    ("FETCH", "ERR must call fetch with at least one queue"),
    ("PUSH", NO_JSON),
    ("PUSH ", NO_JSON),
    ("PUSHB", NO_JSON),
    ("PUSHB ", NO_JSON),
    ("ACK", "ERR invalid ACK "),
    ("ACK ", "ERR invalid ACK "),
    ("FAIL", "ERR invalid FAIL "),
    ("FAIL ", "ERR invalid FAIL "),
    ("BEAT", "ERR invalid BEAT "),
    ("BEAT {}", "ERR unknown worker "),
    ("MUTATE", "ERR invalid format"),
    ("MUTATE {}", "ERR unknown mutate operation"),
    ('MUTATE {"cmd":"kill"}', "ERR invalid target for mutation command"),
    ("QUEUE", "ERR QUEUE needs an argument"),
    ("QUEUE ", "ERR no such QUEUE subcommand: "),
    ("QUEUE LATENCY", "ERR QUEUE LATENCY needs at least one queue name"),
    ("LIMIT", "ERR LIMIT needs an argument"),
    ("RESULT", "ERR RESULT needs an argument"),
    ("JOBS", "ERR JOBS needs an argument"),
    ("JOBS ", "ERR JOBS needs a JSON object"),
    ("BATCH", "ERR no such BATCH subcommand: "),
    ("TRACK", "ERR no such TRACK subcommand: "),
    (
        'FAIL {"jid":"abcdefghij","errtype":5}',
        'ERR invalid FAIL {"jid":"abcdefghij","errtype":5}',
    ),
    ('FAIL {"jid":"abcdefghij","message":1.5}', "ERR invalid FAIL "),
    ('FAIL {"jid":"abcdefghij","backtrace":"x"}', "ERR invalid FAIL "),
    ('FAIL {"jid":5}', "ERR invalid FAIL "),
    ('BEAT {"wid":"w1","rss_kb":"x"}', 'ERR invalid BEAT {"wid":"w1","rss_kb":"x"}'),
    ('BEAT {"wid":5}', "ERR invalid BEAT "),
    ('ACK {"jid":"abcdefghij","x":1}', "ERR invalid ACK "),
]


def test_bare_and_mistyped_commands(peer: Peer) -> None:
    for line, error in BARE_AND_MISTYPED:
        assert error_text(peer.call(line)).startswith(error), line
        assert snapshot(peer)["queues"] == {}, line
    assert peer.call(push_line("after-bare-1")) == OK  # the connection carries on


def test_fetch_with_a_trailing_space_waits_and_answers_nil(peer: Peer) -> None:
    started = time.monotonic()
    assert peer.call("FETCH ") is None  # Faktory: one queue named "", which never has a job
    assert time.monotonic() - started >= 1.5


BAD_HELLOS: list[dict[str, object]] = [
    {"v": "2"},
    {"pid": "123"},
    {"labels": "x"},
    {"labels": [1]},
    {"wid": 5},
    {"hostname": 5},
    {"pwdhash": 5},
    {"wid": "w\u0000id"},
]


def test_hello_with_a_wrong_type_is_closed_without_reply(werk_server: ServerProcess) -> None:
    for hello in BAD_HELLOS:
        peer = Peer(werk_server.host, werk_server.port)
        peer.reply()  # +HI
        peer.send("HELLO " + json.dumps(hello) + "\r\n")
        assert peer.closed(), hello


def test_hello_as_faktory_reads_it(werk_server: ServerProcess) -> None:
    # Invalid UTF-8 in a string is taken (U+FFFD), keys match regardless of case.
    peer = Peer(werk_server.host, werk_server.port)
    peer.reply()
    assert peer.call(b'HELLO {"v":2,"WID":"case-wid","hostname":"h\xff"}') == OK
    assert peer.call('BEAT {"wid":"case-wid"}') == OK
    assert peer.call('BEAT {"WID":"case-wid","RSS_KB":100}') == OK


def test_a_quieted_process_that_reconnects_gets_jobs(
    werk_server: ServerProcess,
) -> None:
    first = Peer(werk_server.host, werk_server.port)
    assert first.hello(wid="quiet-wid") == OK
    reply = first.call('BEAT {"wid":"quiet-wid","current_state":"quiet"}')
    assert reply == b'{"state":"quiet"}'
    first.close()
    time.sleep(0.2)
    again = Peer(werk_server.host, werk_server.port)
    assert again.hello(wid="quiet-wid") == OK
    assert again.call(push_line("after-quiet1")) == OK
    got = fetch(again)
    assert got is not None and got["jid"] == "after-quiet1"


def test_same_jid_pushed_twice_is_delivered_twice(peer: Peer) -> None:
    assert peer.call(push_line("twice-jid-1", args=[1])) == OK
    assert peer.call(push_line("twice-jid-1", args=[2])) == OK
    assert snapshot(peer)["queues"] == {"default": 2}
    first, second = fetch(peer), fetch(peer)
    assert first is not None and second is not None
    assert (first["args"], second["args"]) == ([1], [2])
    assert peer.call('ACK {"jid":"twice-jid-1"}') == OK
    assert snapshot(peer)["sets"]["working"] == 0


def test_a_nul_in_a_key_is_refused_or_unknown(peer: Peer) -> None:
    # No store keeps U+0000 faithfully in a key or text column: PUSH refuses it, and the
    # verbs that look a jid, wid or name up answer as for an unknown one.
    assert peer.call('ACK {"jid":"nul\\u0000jid-1"}') == OK
    assert error_text(peer.call('FAIL {"jid":"nul\\u0000jid-1"}')).startswith("ERR Job not found")
    assert error_text(peer.call('BEAT {"wid":"w\\u0000"}')) == "ERR unknown worker w\x00"
    assert error_text(peer.call('RESULT {"jid":"a\\u0000"}')).startswith("ERR RESULT needs")
    lines = (
        'LIMIT ACQUIRE {"name":"n\\u0000","limit":1,"holder":"h"}',
        'LIMIT ACQUIRE {"name":"n","limit":1,"holder":"h\\u0000"}',
        'TRACK SET {"jid":"nul\\u0000jid-1","percent":5}',
    )
    for line in lines:
        assert error_text(peer.call(line)).startswith("ERR "), line
    assert snapshot(peer)["queues"] == {}
