"""Worker logic without a server: URLs, queue order, jobs, running and reporting."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from werk.client import Job, Middleware, UnknownJobTypeError, Worker, current_job
from werk.client.job import job_dict
from werk.client.queues import QueueOrder, parse_queue
from werk.client.registration import Registration, unknown_jobtype_message
from werk.client.reports import backtrace_lines
from werk.client.runner import Runner
from werk.client.testing import InlineClient
from werk.client.url import ConfigurationError, parse_url, url_from_env
from werk.job import QUEUE_NAME, check_queue_name, parse_time


def test_parse_url() -> None:
    address = parse_url("tcp+tls://:s3cret@example.com:7000")
    assert (address.host, address.port, address.tls, address.password) == (
        "example.com",
        7000,
        True,
        "s3cret",
    )
    assert parse_url("tcp://localhost").port == 7419
    assert "s3cret" not in address.url()
    with pytest.raises(ConfigurationError, match="a server URL starts with tcp:// or tcp"):
        parse_url("http://x")


def test_a_url_without_a_scheme_gets_an_example_with_one() -> None:
    # urlsplit reads "localhost:7621" as scheme "localhost": the message says what is missing
    with pytest.raises(ConfigurationError) as refused:
        parse_url("localhost:7621")
    assert str(refused.value) == (
        "'localhost:7621' is not a server URL: it needs tcp:// (or tcp+tls:// for TLS) in"
        " front, as in tcp://localhost:7621"
    )
    with pytest.raises(ConfigurationError) as refused:
        parse_url(":s3cret@example.com:7000")
    assert "s3cret" not in str(refused.value)
    assert str(refused.value).endswith("as in tcp://:password@example.com:7000")


def test_url_from_env_order() -> None:
    assert url_from_env({}) == "tcp://localhost:7419"
    assert url_from_env({"FAKTORY_URL": "tcp://a:1"}) == "tcp://a:1"
    env = {"FAKTORY_PROVIDER": "MY_URL", "MY_URL": "tcp://b:2", "FAKTORY_URL": "tcp://a:1"}
    assert url_from_env(env) == "tcp://b:2"
    assert url_from_env({**env, "WERK_URL": "tcp://c:3"}) == "tcp://c:3"
    with pytest.raises(ConfigurationError):
        url_from_env({"FAKTORY_PROVIDER": "tcp://x:1"})


def test_job_to_dict_fills_jid_and_created_at() -> None:
    payload = Job("Add", [1, 2], queue="math", at=1.5e9, custom={"k": 1}).to_dict()
    assert len(payload["jid"]) >= 8 and payload["args"] == [1, 2]
    assert parse_time(payload["at"]) == 1.5e9
    assert parse_time(payload["created_at"]) > 1.5e9
    assert "retry" not in payload and payload["custom"] == {"k": 1}


def test_strict_and_weighted_queue_order() -> None:
    assert parse_queue("a,3") == ("a", 3) and parse_queue("b") == ("b", 0)
    strict = QueueOrder(["a", "b"])
    assert not strict.weighted and list(strict.order()) == ["a", "b"]
    weighted = QueueOrder(["a,3", "b,1"], rng=random.Random(1))
    firsts = Counter(weighted.order()[0] for _ in range(4000))
    assert 2700 < firsts["a"] < 3300  # about 3 in 4
    with pytest.raises(ValueError):
        QueueOrder([])


@settings(deadline=None)
@given(st.text(max_size=10), st.one_of(st.none(), st.text(max_size=4)))
def test_a_worker_queue_follows_the_servers_rule(name: str, weight: str | None) -> None:
    # The finding: `werk worker -q "bad name"` ran; the server refuses such a queue name.
    spec = name if weight is None else f"{name},{weight}"
    good_weight = weight is None or (weight.isascii() and weight.isdigit() and int(weight) > 0)
    server_accepts = QUEUE_NAME.match(name) is not None and "," not in name
    if server_accepts and good_weight:
        assert parse_queue(spec) == (name, int(weight or 0))
        check_queue_name(name)  # the server's own check agrees
    else:
        with pytest.raises(ValueError, match="queue (name|weight)"):
            parse_queue(spec)


def test_backtrace_is_trimmed_innermost_first() -> None:
    def inner() -> None:
        raise ValueError("deep")

    def outer() -> None:
        inner()

    try:
        outer()
    except ValueError as exc:
        lines = backtrace_lines(exc, 2)
    assert len(lines) == 2 and "inner" in lines[0] and "outer" in lines[1]


class Recorder(Middleware):
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def before_job(self, job: dict[str, Any]) -> None:
        self.log.append(f"{self.name}:before")

    def after_job(self, job: dict[str, Any], exc: BaseException | None) -> None:
        self.log.append(f"{self.name}:after:{type(exc).__name__ if exc else None}")


async def test_runner_reports_ack_and_fail_with_middleware() -> None:
    log: list[str] = []
    seen: list[Any] = []

    async def ok(x: int) -> None:
        seen.append((x, current_job()))

    def boom() -> None:
        raise KeyError("missing")

    registry = {"ok": Registration.of("ok", ok), "boom": Registration.of("boom", boom)}
    runner = Runner(registry, [Recorder("a", log), Recorder("b", log)])
    ack, _ = await runner.run({"jid": "j-ok", "jobtype": "ok", "args": [1]})
    # the Werk worker's ACK asks to hear when the reservation was gone (docs/protocol.md)
    assert ack.data == b'ACK {"jid":"j-ok","expect":"reserved"}\r\n'
    assert seen == [(1, {"jid": "j-ok", "jobtype": "ok", "args": [1]})]
    fail, _ = await runner.run({"jid": "j-boom", "jobtype": "boom", "args": [], "backtrace": 1})
    payload = json.loads(fail.data[5:])
    assert payload["errtype"] == "KeyError" and payload["message"] == "'missing'"
    assert len(payload["backtrace"]) == 1
    assert log == ["a:before", "b:before", "b:after:None", "a:after:None"] + [
        "a:before",
        "b:before",
        "b:after:KeyError",
        "a:after:KeyError",
    ]
    unknown = json.loads(
        (await runner.run({"jid": "j3", "jobtype": "nope", "args": []}))[0].data[5:]
    )
    assert unknown["errtype"] == "UnknownJobTypeError"


def test_register_forms() -> None:
    worker = Worker("tcp://localhost:1")

    @worker.register
    def plain() -> None: ...

    @worker.register("Named")
    async def named() -> None: ...

    assert set(worker.registry) == {"plain", "Named"}
    assert worker.registry["Named"].is_async and not worker.registry["plain"].is_async


def test_two_functions_cannot_share_a_jobtype() -> None:
    """Two tasks named after their functions (``send`` in two modules) must not silently
    replace each other: the second registration names both functions."""
    from werk.client import task

    worker = Worker("tcp://localhost:1")

    def first(a: int) -> None: ...

    def second(a: str) -> None: ...

    second.__name__ = "first"  # the same function name, as in another module
    worker.include(task(first))
    with pytest.raises(ValueError) as raised:
        worker.include(task(second))
    message = str(raised.value)
    assert "'first'" in message and "first" in message and "second" in message
    assert "@task('Name')" in message  # what really names a jobtype (task() has no name=)
    assert worker.registry["first"].func is first
    worker.include(task(first))  # the same function again is fine
    worker.add("first", first, timeout=5)
    assert worker.registry["first"].timeout == 5


def test_inline_client_runs_jobs_at_once() -> None:
    worker = Worker("tcp://localhost:1")
    results: list[int] = []

    @worker.register
    def add(a: int, b: int) -> None:
        results.append(a + b)

    @worker.register
    async def fails() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("no")

    inline = InlineClient(worker)
    inline.push(Job("add", [1, 2]))
    assert results == [3] and len(inline.done) == 1
    with pytest.raises(RuntimeError):
        inline.push(Job("fails"))
    assert InlineClient(worker, raise_errors=False).push_bulk([Job("fails")]) != {}


def test_an_exception_may_name_its_errtype() -> None:
    from werk.client.reports import fail_call

    class Throttled(Exception):
        errtype = "werk.RateLimited"

    payload = json.loads(fail_call({"jid": "j"}, Throttled("retry after 2")).data[5:])
    assert payload["errtype"] == "werk.RateLimited" and payload["message"] == "retry after 2"


def test_an_unknown_jobtype_names_its_queue_and_at_most_ten_known_jobtypes() -> None:
    registry = {f"job{n:02d}": Registration.of(f"job{n:02d}", print) for n in range(12)}
    message = unknown_jobtype_message({"jobtype": "add", "queue": "mail"}, registry)
    assert message == (
        "no function registered for jobtype 'add' (from queue 'mail'; this worker runs"
        " job00, job01, job02, job03, job04, job05, job06, job07, job08, job09 and 2 more):"
        " push it to a queue that only workers running it fetch"
    )
    assert "this worker runs none)" in unknown_jobtype_message({"jobtype": "add"}, {})


def test_inline_client_and_worker_say_the_same_of_an_unknown_jobtype() -> None:
    worker = Worker("tcp://localhost:1")
    worker.add("add", print)
    job = Job("Nope", [1], queue="mail")
    with pytest.raises(UnknownJobTypeError) as inline:
        InlineClient(worker).push(job)
    report, _ = asyncio.run(Runner(worker.registry, []).run(job_dict(job)))
    sent = json.loads(report.data[len(b"FAIL ") :])
    assert sent["errtype"] == "UnknownJobTypeError"
    assert str(inline.value) == sent["message"]
    assert sent["message"].startswith(
        "no function registered for jobtype 'Nope' (from queue 'mail'"
    )


class _Opaque:
    """A value JSON cannot hold."""


@given(
    st.recursive(
        st.lists(st.integers(), max_size=3),
        lambda inner: (
            st.lists(inner, min_size=1, max_size=3)
            | st.dictionaries(st.sampled_from("abc"), inner, min_size=1, max_size=2)
        ),
        max_leaves=6,
    ),
    st.data(),
)
@settings(max_examples=60, deadline=None)
def test_an_argument_json_cannot_hold_is_named_with_its_place(args: Any, data: Any) -> None:
    """Wherever a value JSON cannot hold sits in a job's arguments, the push names the
    jobtype and the place (``args[1].b[0]``), not only json's bare type message."""
    from werk.client.client import CALLS

    # Given arguments with one opaque value put at a place drawn from their structure
    path, holder, key = "args", {"args": [args]}, "args"
    node: Any = holder["args"]
    path, key, holder = "args[0]", 0, node
    while isinstance(holder[key], list | dict) and holder[key] and data.draw(st.booleans()):
        child = holder[key]
        inner = data.draw(
            st.sampled_from(sorted(child) if isinstance(child, dict) else range(len(child)))
        )
        path += f".{inner}" if isinstance(child, dict) else f"[{inner}]"
        holder, key = child, inner
    holder[key] = _Opaque()
    # When the job is pushed, Then the message names the job and that place
    with pytest.raises(TypeError) as raised:
        CALLS.push({"jid": "j1", "jobtype": "Resize", "args": node})
    message = str(raised.value)
    assert "'Resize'" in message and "'j1'" in message
    assert f"{path} is a _Opaque" in message


def test_a_time_in_milliseconds_is_refused_with_a_hint() -> None:
    assert Job("x", at=1_700_000_000).to_dict()["at"] == "2023-11-14T22:13:20Z"
    for bad in (1_700_000_000_000, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="Unix seconds from 1970 to 9999") as raised:
            Job("x", at=bad).to_dict()
        assert ("milliseconds" in str(raised.value)) == (bad == 1_700_000_000_000)
