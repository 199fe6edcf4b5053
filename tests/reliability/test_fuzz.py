"""Fuzzing with hypothesis: the line and reply readers, job validation, every command's
payload against a real server, and the web UI's action forms.

The rule everywhere: bad input gets a typed answer (``-ERR ...``, ``+OK``, bulk or nil; a
4xx page), never ``-ERR internal error``, a 500, a dropped connection or a dead server.
Servers are module-scoped (their state does not matter); examples are sized so the whole
module runs in well under a minute.
"""

from __future__ import annotations

import json
import math
import re
import string
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import ServerProcess
from tests.reliability.support import Conn, connect
from werk.errors import CommandError, LineTooLongError, ProtocolError
from werk.job import scheduled_at, validate
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

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- values -------------------------------------------------------------------------------

JOB_KEYS = [
    "jid", "jobtype", "args", "queue", "retry", "reserve_for", "at", "priority", "custom",
    "backtrace", "created_at", "enqueued_at", "failure", "wid", "current_state", "rss_kb",
    "errtype", "message", "cmd", "target", "filter", "jids", "regexp", "percent", "desc",
    "reserve_until", "bid", "parent_bid", "description", "success", "complete", "name",
    "unique_for", "unique_until", "expires_at", "expires_in", "track",
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(
        ["default", "retries", "dead", "scheduled", "requeue", "kill", "clear", "discard",
         "quiet", "terminate", "2030-01-01T00:00:00Z", "*", "", "abcdefghij",
         "\ud800abcdefgh", "abc\udfffdefgh", "[[[", "*\"jid\"*"]
    )
    | st.sampled_from([math.inf, -math.inf, math.nan, 1e300, -1e300, 2**64, -(2**63), 0.5])
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(JOB_KEYS) | st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=12,
)
job_like = st.fixed_dictionaries(
    {},
    optional={key: json_values for key in JOB_KEYS},
)
valid_job_base = st.fixed_dictionaries(
    {
        "jid": st.text(string.ascii_letters, min_size=8, max_size=16),
        "jobtype": st.text(min_size=1, max_size=10),
        "args": st.lists(json_values, max_size=3),
    },
    optional={key: json_values for key in JOB_KEYS[3:]},
)


def dumps(value: Any) -> str:
    """JSON as Python writes it (NaN and Infinity included: clients may send them)."""
    return json.dumps(value, separators=(",", ":"))


# -- the readers (no sockets) ---------------------------------------------------------------


def chunked(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    start = 0
    for point in [*points, len(data)]:
        yield data[start:point]
        start = point


@FUZZ
@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=20),
    crlf=st.lists(st.booleans(), min_size=20, max_size=20),
    cuts=st.lists(st.integers(min_value=0), max_size=10),
)
def test_line_reader_any_chunking(lines: list[bytes], crlf: list[bool], cuts: list[int]) -> None:
    data = b"".join(line + (b"\r\n" if crlf[i] else b"\n") for i, line in enumerate(lines))
    reader = LineReader(max_line=64)
    out: list[bytes] = []
    for part in chunked(data, cuts):
        reader.feed(part)
        while (line := reader.next_line()) is not None:
            out.append(line)
    # The reader strips the LF, then one CR before it (if any).
    sent = [line + (b"\r" if crlf[i] else b"") for i, line in enumerate(lines)]
    expected = [line[:-1] if line.endswith(b"\r") else line for line in sent]
    assert out == expected


@FUZZ
@given(data=st.binary(max_size=400), max_line=st.integers(1, 50), cuts=st.lists(st.integers(0)))
def test_line_reader_limit(data: bytes, max_line: int, cuts: list[int]) -> None:
    reader = LineReader(max_line=max_line)
    consumed = 0
    try:
        for part in chunked(data, cuts):
            reader.feed(part)
            while (line := reader.next_line()) is not None:
                assert len(line) <= max_line
                consumed += data[consumed:].index(b"\n") + 1
    except LineTooLongError:
        rest = data[consumed:]
        assert len(rest.split(b"\n", 1)[0]) > max_line


reply_values = st.one_of(
    st.text(max_size=20).filter(lambda t: "\r" not in t and "\n" not in t).map(Simple),
    st.text(max_size=20).filter(lambda t: "\r" not in t and "\n" not in t).map(Error),
    st.binary(max_size=60),
    st.none(),
    st.integers(-(2**63), 2**63),
)


def encode(value: object) -> bytes:
    if isinstance(value, Simple):
        return encode_simple(value.text)
    if isinstance(value, Error):
        return encode_error(value.text)
    if isinstance(value, int):
        return encode_int(value)
    assert value is None or isinstance(value, bytes)
    return encode_bulk(value)


@FUZZ
@given(values=st.lists(reply_values, max_size=15), cuts=st.lists(st.integers(0), max_size=12))
def test_reply_reader_round_trip_any_chunking(values: list[object], cuts: list[int]) -> None:
    reader = ReplyReader()
    out: list[object] = []
    for part in chunked(b"".join(encode(v) for v in values), cuts):
        reader.feed(part)
        while (item := reader.next_reply()) is not NEED_DATA:
            out.append(item)
    assert out == values


@FUZZ
@given(data=st.binary(max_size=200) | st.lists(st.sampled_from([b"+", b"-", b":", b"$", b"\r\n",
       b"-1", b"5", b"\xff", b"abc", b"$99999999999"])).map(b"".join))  # fmt: skip
def test_reply_reader_garbage_only_raises_protocol_error(data: bytes) -> None:
    reader = ReplyReader(max_bulk=1 << 20)
    reader.feed(data)
    try:
        for _ in range(len(data) + 1):
            if reader.next_reply() is NEED_DATA:
                break
    except ProtocolError:
        pass


# -- job validation --------------------------------------------------------------------------


@FUZZ
@given(job=json_values | job_like | valid_job_base)
def test_validate_accepts_or_raises_command_error(job: Any) -> None:
    now = time.time()
    try:
        checked = validate(job, now)
        scheduled_at(checked, now)
    except CommandError:
        return
    assert isinstance(checked["retry"], int) and 1 <= checked["priority"] <= 9
    json.dumps(checked)


@pytest.mark.parametrize(
    "field, value",
    [("retry", math.inf), ("retry", math.nan), ("priority", math.nan), ("reserve_for", -math.inf)],
)
def test_validate_refuses_non_finite_numbers(field: str, value: float) -> None:
    job = {"jid": "abcdefgh1", "jobtype": "X", "args": [], field: value}
    with pytest.raises(CommandError, match=field):
        validate(job, time.time())


# -- every command against a real server ------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("fuzz") / "data", web=True).start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def fuzz_conn(fuzz_server: ServerProcess) -> Iterator[list[Conn]]:
    """A connection that the test replaces if a command legitimately closed it."""
    holder = [connect(fuzz_server.host, fuzz_server.port)]
    yield holder
    holder[0].close()


VERBS = ["PUSH", "PUSHB", "ACK", "FAIL", "BEAT", "INFO", "FLUSH", "MUTATE", "QUEUE", "BATCH",
         "TRACK", "LIMIT", "JOBS", "PROCESSES", "HELLO", "push", "NOPE"]  # fmt: skip
SUBCOMMANDS = ["", "PAUSE ", "RESUME ", "REMOVE ", "LATENCY ", "NEW ", "OPEN ", "COMMIT ",
               "STATUS ", "SET ", "GET ", "ACQUIRE ", "RELEASE "]  # fmt: skip
payloads = st.one_of(
    st.binary(max_size=80),
    json_values.map(dumps).map(str.encode),
    job_like.map(dumps).map(str.encode),
    valid_job_base.map(dumps).map(str.encode),
    st.lists(valid_job_base | job_like, max_size=3).map(dumps).map(str.encode),
)


def check_reply(conn: Conn, line: bytes) -> object:
    conn.send(line + b"\r\n")
    reply = conn.reply()
    assert isinstance(reply, Simple | Error | bytes | int) or reply is None, reply
    assert not (isinstance(reply, Error) and "internal error" in reply.text), (line, reply)
    return reply


@settings(FUZZ, max_examples=400)
@given(verb=st.sampled_from(VERBS), sub=st.sampled_from(SUBCOMMANDS), payload=payloads)
def test_any_payload_after_any_verb_gets_a_typed_reply(
    fuzz_server: ServerProcess, fuzz_conn: list[Conn], verb: str, sub: str, payload: bytes
) -> None:
    line = (verb + " " + sub).encode() + payload.replace(b"\n", b" ").replace(b"\r", b" ")
    check_reply(fuzz_conn[0], line.rstrip(b" ") if not payload else line)


@settings(FUZZ, max_examples=4)
@given(payload=st.binary(max_size=30) | st.text(string.ascii_letters + " *.-_", max_size=30))
def test_fetch_with_any_queue_names_gets_a_typed_reply(
    fuzz_server: ServerProcess, fuzz_conn: list[Conn], payload: bytes | str
) -> None:
    data = payload.encode() if isinstance(payload, str) else payload
    check_reply(fuzz_conn[0], b"FETCH " + data.replace(b"\n", b" ").replace(b"\r", b" "))


J = '"jid":"regress%02d","jobtype":"X","args":[]'
REGRESSIONS = [
    # Each of these once answered -ERR internal error.
    'PUSH {%s,"retry":1e999}',
    'PUSH {%s,"retry":NaN}',
    'PUSH {%s,"priority":NaN}',
    'PUSH {%s,"reserve_for":-1e999}',
    'PUSH {%s,"custom":{"expires_in":1e300}}',
    'PUSH {%s,"custom":{"expires_in":-Infinity}}',
    'BATCH NEW {"success":{"jid":"abcdefghij","jobtype":"x","args":[],"retry":1e999}}',
    'MUTATE {"cmd":"kill","target":"dead","filter":{"jids":5}}',
    'MUTATE {"cmd":"requeue","target":"retries","filter":{"jids":{"a":1}}}',
]


@pytest.mark.parametrize("line", REGRESSIONS)
def test_regressions_get_a_clear_error(fuzz_conn: list[Conn], line: str) -> None:
    if "%s" in line:
        line = line % (J % REGRESSIONS.index(line))
    reply = check_reply(fuzz_conn[0], line.encode())
    assert isinstance(reply, Error | bytes), reply


@pytest.mark.parametrize(
    "line",
    [
        'PUSH {"jid":"\\ud800abcdefgh","jobtype":"X","args":[]}',
        'PUSH {"jid":"abcdefgh","jobtype":"\\udc00","args":[]}',
        'PUSHB [{"jid":"\\ud800abcdefgi","jobtype":"X","args":[]}]',
    ],
)
def test_lone_surrogates_are_taken_as_faktory_takes_them(fuzz_conn: list[Conn], line: str) -> None:
    # Go's decoder (and so Faktory) reads a lone surrogate escape as U+FFFD.
    reply = check_reply(fuzz_conn[0], line.encode())
    assert reply in (Simple("OK"), b"{}"), reply


def test_server_still_serves_after_the_fuzzing(fuzz_server: ServerProcess) -> None:
    # Runs after the fuzz tests of this module (pytest keeps file order).
    assert fuzz_server.proc is not None and fuzz_server.proc.poll() is None
    with connect(fuzz_server.host, fuzz_server.port) as conn:
        assert isinstance(conn.call("INFO"), bytes)
    assert b"Traceback" not in fuzz_server.log, fuzz_server.log.decode()[-3000:]


# -- the web UI's forms ------------------------------------------------------------------------

TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
FORM_KEYS = ["action", "jid", "wid", "signal", "page", "back", "queue", "jobtype", "q"]
FORM_VALUES = ["pause", "resume", "delete", "clear", "delete_jobs", "retry", "kill", "delete_all",
               "retry_all", "kill_all", "add_to_queue", "requeue", "all", "quiet", "terminate",
               "queue", "1", "-1", "99999999999999999999", "0x1", "default"]  # fmt: skip
form_text = st.sampled_from(FORM_VALUES) | st.text(max_size=20)
forms = st.lists(st.tuples(st.sampled_from(FORM_KEYS) | st.text(max_size=6), form_text), max_size=6)
routes = st.one_of(
    st.just("/busy"),
    st.sampled_from(["/retries", "/scheduled", "/dead"]),
    st.tuples(st.sampled_from(["/retries/", "/scheduled/", "/dead/", "/queues/"]),
              st.sampled_from(["default", "abcdefghij"]) | st.text(min_size=1, max_size=12)).map(
        lambda t: t[0] + quote(t[1], safe="")
    ),
)  # fmt: skip


@pytest.fixture(scope="module")
def web(fuzz_server: ServerProcess) -> Iterator[tuple[httpx.Client, str]]:
    client = httpx.Client(base_url=f"http://127.0.0.1:{fuzz_server.web_port}", timeout=10)
    match = TOKEN.search(client.get("/").text)
    assert match
    yield client, match.group(1)
    client.close()


@settings(FUZZ, max_examples=250)
@given(route=routes, form=forms)
def test_web_forms_never_answer_500(
    web: tuple[httpx.Client, str], route: str, form: list[tuple[str, str]]
) -> None:
    client, token = web
    fields: dict[str, list[str]] = {"csrf_token": [token]}
    for key, value in form:
        fields.setdefault(key, []).append(value)
    response = client.post(route, data=fields)
    assert response.status_code < 500, (route, form, response.text[:300])
    assert response.status_code != 403, "the CSRF token was refused"


def test_web_form_without_token_is_refused(web: tuple[httpx.Client, str]) -> None:
    client, _ = web
    assert client.post("/retries", data={"action": "retry_all"}).status_code == 403


def test_info_renders_after_the_fuzzing(fuzz_server: ServerProcess) -> None:
    # INFO must still render (every stored job is well formed) after all the fuzzing.
    with connect(fuzz_server.host, fuzz_server.port) as conn:
        info = conn.info()
    assert "faktory" in info
