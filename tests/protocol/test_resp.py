"""The RESP reply reader and the line reader: bytes in, values out, no sockets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from werk.errors import LineTooLongError, ProtocolError
from werk.protocol.resp import (
    NEED_DATA,
    Error,
    LineReader,
    ReplyReader,
    Simple,
    encode_bulk,
    encode_error,
    encode_int,
    encode_simple,
)


def read_all(data: bytes) -> list[object]:
    reader = ReplyReader()
    reader.feed(data)
    out: list[object] = []
    while (item := reader.next_reply()) is not NEED_DATA:
        out.append(item)
    return out


def test_each_reply_type() -> None:
    data = b"+OK\r\n-ERR boom\r\n:42\r\n$5\r\nhello\r\n$-1\r\n$0\r\n\r\n"
    assert read_all(data) == [Simple("OK"), Error("ERR boom"), 42, b"hello", None, b""]


def test_bulk_keeps_whitespace_and_crlf_inside() -> None:
    assert read_all(b"$6\r\n a\r\nb \r\n") == [b" a\r\nb "]


def test_reading_resumes_after_any_split() -> None:
    data = b'+HI {}\r\n$11\r\n{"jid":"x"}\r\n-NOTUNIQUE Job not unique\r\n'
    expected = read_all(data)
    for cut in range(len(data)):
        reader = ReplyReader()
        out: list[object] = []
        for part in (data[:cut], data[cut:]):
            reader.feed(part)
            while (item := reader.next_reply()) is not NEED_DATA:
                out.append(item)
        assert out == expected


def test_bad_reply_type_is_a_protocol_error() -> None:
    reader = ReplyReader()
    reader.feed(b"*2\r\n")
    with pytest.raises(ProtocolError):
        reader.next_reply()


def test_bulk_without_crlf_is_a_protocol_error() -> None:
    reader = ReplyReader()
    reader.feed(b"$2\r\nabXY")
    with pytest.raises(ProtocolError):
        reader.next_reply()


@given(st.lists(st.one_of(st.binary(max_size=200), st.none(), st.integers())))
def test_encode_then_read_round_trips(values: list[bytes | int | None]) -> None:
    data = b"".join(encode_int(v) if isinstance(v, int) else encode_bulk(v) for v in values)
    assert read_all(data) == values


def test_simple_and_error_encoding() -> None:
    assert encode_simple("OK") == b"+OK\r\n"
    assert encode_error("ERR a\r\nb") == b"-ERR a  b\r\n"
    with pytest.raises(ValueError):
        encode_simple("a\nb")


def test_line_reader_accepts_crlf_and_bare_lf() -> None:
    lines = LineReader(100)
    lines.feed(b"INFO\r\nEND\nFETCH de")
    assert lines.next_line() == b"INFO"
    assert lines.next_line() == b"END"
    assert lines.next_line() is None
    lines.feed(b"fault\r\n")
    assert lines.next_line() == b"FETCH default"


def test_line_reader_limit() -> None:
    lines = LineReader(10)
    lines.feed(b"x" * 11)
    with pytest.raises(LineTooLongError):
        lines.next_line()
    ok = LineReader(10)
    ok.feed(b"x" * 10 + b"\n")
    assert ok.next_line() == b"x" * 10


@given(st.lists(st.binary(max_size=50).filter(lambda b: b"\n" not in b), max_size=20), st.data())
def test_line_reader_splits_any_chunking(lines: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(line + b"\r\n" for line in lines)
    reader = LineReader(1000)
    out: list[bytes] = []
    pos = 0
    while pos < len(stream):
        step = data.draw(st.integers(1, 20))
        reader.feed(stream[pos : pos + step])
        pos += step
        while (line := reader.next_line()) is not None:
            out.append(line)
    assert out == lines
