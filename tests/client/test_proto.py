"""The sans-IO core: bytes in, values out, no sockets."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from werk.client.proto import NEED_DATA, ClientProtocol, Identity, State, parse_beat, parse_job
from werk.errors import AuthenticationError, CommandError, NotUniqueError, ProtocolError
from werk.protocol.resp import Error, Simple


def hello_of(line: bytes) -> dict[str, object]:
    assert line.startswith(b"HELLO {") and line.endswith(b"\r\n")
    value: dict[str, object] = json.loads(line[6:])
    return value


def test_handshake_without_password() -> None:
    proto = ClientProtocol(Identity(wid="w1", hostname="h", pid=7, labels=("a",)))
    hello = hello_of(proto.handshake(Simple('HI {"v":2}')) or b"")
    assert hello == {"hostname": "h", "pid": 7, "labels": ["a"], "v": 2, "wid": "w1"}
    assert proto.state is State.AWAIT_OK
    assert proto.handshake(Simple("OK")) is None
    assert proto.state.value == State.READY.value


def test_producer_sends_no_wid() -> None:
    hello = hello_of(ClientProtocol().handshake(Simple('HI {"v":2}')) or b"")
    assert "wid" not in hello and "pwdhash" not in hello


def test_handshake_hashes_the_password_with_the_test_vector() -> None:
    proto = ClientProtocol(password="foobar")
    line = proto.handshake(Simple('HI {"v":2,"i":1545,"s":"55104dc76695721d"}')) or b""
    expected = "6d877f8e5544b1f2598768f817413ab8a357afffa924dedae99eb91472d4ec30"
    assert hello_of(line)["pwdhash"] == expected


def test_missing_password_is_an_authentication_error() -> None:
    with pytest.raises(AuthenticationError):
        ClientProtocol().handshake(Simple('HI {"v":2,"i":4000,"s":"ab"}'))


def test_wrong_password_is_an_authentication_error() -> None:
    proto = ClientProtocol(password="nope")
    proto.handshake(Simple('HI {"v":2,"i":4000,"s":"ab"}'))
    with pytest.raises(AuthenticationError):
        proto.handshake(Error("ERR Invalid password"))
    assert proto.state is State.CLOSED


def test_newer_server_version_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "werk.client"):
        ClientProtocol().handshake(Simple('HI {"v":3}'))
    assert "v3" in caplog.text


def test_not_a_greeting_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        ClientProtocol().handshake(Simple("OK"))


def test_commands_encode_compact_lines() -> None:
    proto = ClientProtocol()
    assert proto.fetch(["a", "b"]).data == b"FETCH a b\r\n"
    assert proto.ack("j1").data == b'ACK {"jid":"j1"}\r\n'
    assert proto.info().data == b"INFO\r\n"
    assert proto.queue("PAUSE", ["q"]).data == b"QUEUE PAUSE q\r\n"
    assert proto.queue_latency(["q", "r"]).data == b"QUEUE LATENCY q r\r\n"
    mutate = proto.mutate("kill", "retries", {"jids": ["x"]}).data
    assert mutate == b'MUTATE {"cmd":"kill","target":"retries","filter":{"jids":["x"]}}\r\n'
    assert proto.batch_open("b-1").data == b"BATCH OPEN b-1\r\n"
    assert proto.track_get("j").data == b"TRACK GET j\r\n"
    assert proto.end() == b"END\r\n"


def test_replies_map_to_values_and_errors() -> None:
    proto = ClientProtocol()
    assert proto.push({"jid": "x"}).parse(Simple("OK")) is None
    with pytest.raises(NotUniqueError):
        proto.push({"jid": "x"}).parse(Error("NOTUNIQUE Job not unique"))
    with pytest.raises(CommandError) as info:
        proto.push({"jid": "x"}).parse(Error("ERR jobs must have a jobtype parameter"))
    assert info.value.code == "ERR"
    assert proto.push_bulk([]).parse(b'{"j":"ERR bad"}') == {"j": "ERR bad"}
    assert proto.queue_latency(["q"]).parse(b'{"q":0.5}') == {"q": 0.5}
    assert proto.batch_new({}).parse(b"b-123") == "b-123"
    with pytest.raises(ProtocolError):
        proto.ack("x").parse(b"unexpected bulk")


def test_fetch_reply() -> None:
    assert parse_job(None) is None
    assert parse_job(b"") is None
    assert parse_job(b'{"jid":"j","args":[]}') == {"jid": "j", "args": []}


def test_beat_reply_in_every_form() -> None:
    assert parse_beat(Simple("OK")) is None
    assert parse_beat(b'{"state":"quiet"}') == "quiet"
    assert parse_beat(Simple('{"state":"terminate"}')) == "terminate"
    with pytest.raises(CommandError):
        parse_beat(Error("ERR unknown worker w"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(args=st.lists(json_values, max_size=5), jobtype=st.text(min_size=1))
def test_push_is_one_line_of_json(args: list[object], jobtype: str) -> None:
    data = ClientProtocol().push({"jid": "abcdefgh", "jobtype": jobtype, "args": args}).data
    assert data.endswith(b"\r\n") and data.count(b"\n") == 1
    assert b" " not in data[5:] or " " in jobtype or " " in json.dumps(args)
    assert json.loads(data[5:]) == {"jid": "abcdefgh", "jobtype": jobtype, "args": args}


@given(cuts=st.lists(st.integers(min_value=0, max_value=80), max_size=6))
def test_replies_survive_any_split(cuts: list[int]) -> None:
    wire = b'+HI {"v":2}\r\n+OK\r\n$16\r\n{"state":"quiet"}\r\n'.replace(b"$16", b"$17")
    wire += b"$-1\r\n-ERR nope\r\n"
    proto = ClientProtocol()
    replies = []
    points = sorted({min(c, len(wire)) for c in cuts}) + [len(wire)]
    start = 0
    for point in points:
        proto.feed(wire[start:point])
        start = point
        while (reply := proto.next_reply()) is not NEED_DATA:
            replies.append(reply)
    assert replies == [
        Simple('HI {"v":2}'),
        Simple("OK"),
        b'{"state":"quiet"}',
        None,
        Error("ERR nope"),
    ]
