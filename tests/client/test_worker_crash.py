"""Nothing a job does or raises takes the worker down or hangs it.

A job's ``SystemExit`` or ``KeyboardInterrupt`` is its failure; text UTF-8 cannot carry
(a lone surrogate) is sent escaped or refused clearly; an exception whose ``__str__``
raises is still described; and a part of the worker that crashes stops it (exit 70)
instead of hanging it, with its job FAILed.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.client.conftest import async_wait_until, wait_until
from tests.conftest import SQLITE_ONLY
from tests.helpers import ServerProcess
from werk.client import Client, Job, Worker
from werk.client.job import job_dict
from werk.client.processor import heartbeat
from werk.client.proto import ClientProtocol
from werk.client.reconnect import Connector
from werk.client.reports import fail_call, result_ack
from werk.client.results import ResultRefusedError
from werk.client.runner import Runner
from werk.protocol import jsonwire

JOBS = textwrap.dedent(
    """
    import argparse
    import sys
    import time

    from werk.client import Worker

    worker = Worker(concurrency=3)

    @worker.register
    def sync_exit():
        sys.exit(3)

    @worker.register
    def sync_interrupt():
        raise KeyboardInterrupt

    @worker.register
    async def async_exit():
        sys.exit(4)

    @worker.register
    async def async_interrupt():
        raise KeyboardInterrupt

    @worker.register
    def bad_flags():
        argparse.ArgumentParser().parse_args(["--no-such-flag"])  # sys.exit(2)

    @worker.register
    def slow(seconds):
        time.sleep(seconds)
    """
)

BUG = textwrap.dedent(
    """
    # A bug in the worker, injected: the processor that fetches "trips_a_bug" fails
    # outside the job (where nothing of the job's own is to blame).
    from werk.client import processor

    _execute = processor.Processor._execute

    async def _execute_with_a_bug(self, job):
        if job["jobtype"] == "trips_a_bug":
            raise RuntimeError("a bug in the worker")
        return await _execute(self, job)

    processor.Processor._execute = _execute_with_a_bug

    @worker.register
    def trips_a_bug():
        pass
    """
)

SURROGATE = "\udcff"
"""What ``os.fsdecode`` makes of the byte 0xff: a lone surrogate, which UTF-8 cannot encode."""


def start(
    tmp_path: Path, server: ServerProcess, *flags: str, module: str = JOBS
) -> subprocess.Popen[bytes]:
    (tmp_path / "jobs_module.py").write_text(module)
    args = [sys.executable, "-m", "werk", "worker", "jobs_module:worker", "--url", server.url]
    return subprocess.Popen([*args, *flags], cwd=tmp_path, stderr=subprocess.PIPE)


def busy(client: Client) -> int:
    return int(client.info()["faktory"]["tasks"]["Busy"]["size"])


def states(client: Client, jids: list[str], *wanted: str) -> dict[str, Any]:
    """The jobs' states once each is in one of ``wanted``; empty (falsy) before."""
    found = {jid: client.job_state(jid) for jid in jids}
    return found if all(state.state in wanted for state in found.values()) else {}


@SQLITE_ONLY
@pytest.mark.parametrize("flags", [[], ["-p", "1"]], ids=["worker", "processes"])
def test_a_job_that_exits_or_is_interrupted_fails_and_the_worker_goes_on(
    tmp_path: Path, werk_server: ServerProcess, client: Client, flags: list[str]
) -> None:
    # Given werk worker running two slow jobs
    slow = [client.push(Job("slow", [2], result_ttl=60)) for _ in range(2)]
    proc = start(tmp_path, werk_server, "-c", "3", *flags)
    wait_until(lambda: busy(client) == 2)
    # When jobs beside them raise SystemExit and KeyboardInterrupt, in def and async def
    errtypes = {
        "sync_exit": ("SystemExit", "3"),
        "sync_interrupt": ("KeyboardInterrupt", "KeyboardInterrupt"),
        "async_exit": ("SystemExit", "4"),
        "async_interrupt": ("KeyboardInterrupt", "KeyboardInterrupt"),
        "bad_flags": ("SystemExit", "2"),  # argparse's error exit, as -p once read it
    }
    failing = {client.push(Job(jobtype, [], result_ttl=60)): jobtype for jobtype in errtypes}
    # Then each is FAILed with its exception, as any failure (to the retry set)
    failed = wait_until(lambda: states(client, list(failing), "retrying"))
    for jid, state in failed.items():
        assert state.error is not None
        assert (state.error["errtype"], state.error["message"]) == errtypes[failing[jid]]
    # And the jobs running beside them finish, and the worker goes on fetching
    assert wait_until(lambda: states(client, slow, "succeeded"))
    after = client.push(Job("slow", [0], result_ttl=60))
    assert wait_until(lambda: states(client, [after], "succeeded"))
    assert proc.poll() is None
    # And a real Ctrl-C (SIGINT) still stops it gracefully
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr.decode()
    assert b"failed after" in stderr and b"SystemExit: 3" in stderr


async def test_unsendable_and_unprintable_errors_and_results_are_reported(
    werk_server: ServerProcess, client: Client, start_worker: Any
) -> None:
    worker = Worker(werk_server.url, concurrency=1)

    class NoStrError(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

    @worker.register
    def undecodable_message() -> None:
        raise ValueError(f"bad name {SURROGATE} here")

    class NamedError(Exception):
        errtype = f"Bad{SURROGATE}Error"  # an exception may name its errtype

    @worker.register
    def undecodable_errtype() -> None:
        raise NamedError("x")

    @worker.register
    def undecodable_file() -> None:
        code = compile("def f():\n    raise OSError('x')\n", f"/tmp/{SURROGATE}.py", "exec")
        scope: dict[str, Any] = {}
        exec(code, scope)
        scope["f"]()

    @worker.register
    def unprintable() -> None:
        raise NoStrError()

    @worker.register
    def undecodable_result() -> str:
        return f"file{SURROGATE}.txt"

    @worker.register
    def fine() -> str:
        return "fine"

    names = [
        "undecodable_message",
        "undecodable_errtype",
        "undecodable_file",
        "unprintable",
        "undecodable_result",
    ]
    jids = {name: client.push(Job(name, [], result_ttl=60)) for name in names}
    last = client.push(Job("fine", [], result_ttl=60))
    task = start_worker(worker)
    # the worker goes on past all of them, in order (one slot)
    assert await asyncio.to_thread(client.result, last, 15) == "fine"
    assert not task.done()
    errors = {name: client.job_state(jid).error or {} for name, jid in jids.items()}
    assert errors["undecodable_message"]["message"] == "bad name \\udcff here"
    assert errors["undecodable_errtype"]["errtype"] == "Bad\\udcffError"
    assert errors["undecodable_file"]["backtrace"][0] == "/tmp/\\udcff.py:2:in `f'"
    assert errors["unprintable"] == {
        **errors["unprintable"],
        "errtype": "NoStrError",
        "message": "<unprintable NoStrError: str() raised RuntimeError>",
    }
    refused = errors["undecodable_result"]
    assert refused["errtype"] == "ResultNotJSON" and "U+DCFF" in refused["message"]


def test_a_pushed_string_with_a_lone_surrogate_is_refused_clearly(
    werk_server: ServerProcess, client: Client
) -> None:
    with pytest.raises(TypeError, match=r"args\[0\] is a str with the lone surrogate U\+DCFF"):
        client.push(Job("x", [f"a{SURROGATE}"]))
    with pytest.raises(TypeError, match=r"\['b\\udcff'\] is a key with the lone surrogate"):
        client.push(Job("x", [{f"b{SURROGATE}": 1}]))
    assert client.info()["faktory"]["queues"].get("default", 0) == 0


ANY_TEXT = st.lists(
    st.one_of(st.text(), st.text(st.characters(categories=["Cs"]), min_size=1)), max_size=4
).map("".join)
"""Any str, lone surrogates included (pieces of text and of surrogates: ``st.text()`` of any
character seldom draws one)."""


def _escaped(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode()


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


@given(text=ANY_TEXT)
def test_any_error_text_is_sent_intact_or_escaped(text: str) -> None:
    error = type("E", (Exception,), {"errtype": text or "E"})(text)
    payload = jsonwire.loads(fail_call({"jid": "j"}, error).data[5:])
    expected = text if _utf8(text) else _escaped(text)
    assert payload["message"] == (expected or "E")
    assert payload["errtype"] == (expected or "E")


@given(text=ANY_TEXT)
def test_any_result_text_is_sent_intact_or_refused_as_not_json(text: str) -> None:
    job = {"jid": "j", "custom": {"result_ttl": 60}}
    try:
        ack = result_ack(job, {"name": text}, 0.0)
    except ResultRefusedError as exc:
        assert not _utf8(text) and exc.errtype == "ResultNotJSON"
    else:
        assert jsonwire.loads(ack.data[4:])["result"] == {"name": text}


@given(text=ANY_TEXT)
def test_any_pushed_text_is_sent_intact_or_refused_with_type_error(text: str) -> None:
    job = job_dict(Job("x", [text]))
    try:
        data = ClientProtocol().push(job).data
    except TypeError as exc:
        assert not _utf8(text) and "lone surrogate" in str(exc)
    else:
        assert jsonwire.loads(data[5:])["args"] == [text]


@settings(max_examples=10, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=ANY_TEXT)
def test_the_server_keeps_any_reported_message_intact_or_escaped(
    werk_server: ServerProcess, client: Client, text: str
) -> None:
    """The worker's FAIL, through a real server: the message the server keeps is the one
    sent, intact or escaped (not a U+FFFD in place of the surrogate), then stripped as the
    server strips every message."""
    jid = client.push(Job("fails", [], result_ttl=60))
    job = client.fetch("default")
    assert job is not None and job["jid"] == jid
    client.call(fail_call(job, ValueError(text)))
    error = client.job_state(jid).error or {}
    sent = (text if _utf8(text) else _escaped(text)) or "ValueError"
    assert error["message"] == (sent.strip() or "unknown")  # the server strips it
    client.flush()


@pytest.mark.timeout(10)
async def test_a_state_change_wait_cancelled_as_the_state_changes_ends() -> None:
    """Python 3.11's ``asyncio.wait_for`` swallows a cancellation that arrives as its
    awaitable completes: the heartbeat, cancelled by the worker right after a stop set its
    event, waited on for ever."""
    worker = Worker("tcp://127.0.0.1:1")
    waiting = asyncio.create_task(worker.wait_state_change(30))
    await asyncio.sleep(0)  # it waits
    worker.stop()  # the event it waits on is set
    waiting.cancel()  # and it is cancelled in the same turn, as Worker.run_async does
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, 5)


@pytest.mark.timeout(15)
async def test_the_heartbeat_ends_when_cancelled_as_the_worker_stops(
    werk_server: ServerProcess, client: Client
) -> None:
    worker = Worker(werk_server.url, heartbeat_interval=30)
    beating = asyncio.create_task(heartbeat(worker, Connector(worker)))
    await async_wait_until(lambda: client.processes())  # registered, now waiting
    worker.stop()
    beating.cancel()
    done, _ = await asyncio.wait([beating], timeout=5)
    assert done, "the heartbeat went on after it was cancelled"


@SQLITE_ONLY
def test_a_crashed_processor_stops_the_worker_with_its_job_failed(
    tmp_path: Path, werk_server: ServerProcess, client: Client
) -> None:
    # Given werk worker, running a slow job
    proc = start(tmp_path, werk_server, "-c", "2", "--shutdown-timeout", "10", module=JOBS + BUG)
    slow = client.push(Job("slow", [2], result_ttl=60))
    wait_until(lambda: busy(client) == 1)
    # When the other processor crashes, on a bug of the worker's
    began = time.monotonic()
    crashing = client.push(Job("trips_a_bug", [], result_ttl=60))
    # Then the worker stops gracefully (the slow job finishes) and exits 70, in time
    _, stderr = proc.communicate(timeout=20)
    log = stderr.decode()
    assert proc.returncode == 70, log
    assert time.monotonic() - began < 10
    assert "crashed (a bug in werk): RuntimeError: a bug in the worker" in log
    assert client.job_state(slow).state == "succeeded"
    # And the job it held is FAILed with the error, as any failure
    state = client.job_state(crashing)
    assert state.state == "retrying" and state.error is not None
    assert state.error["errtype"] == "RuntimeError"
    assert "a bug in the worker" in state.error["message"]
    assert client.info()["faktory"]["sets"]["working"] == 0


async def test_a_bug_running_one_job_fails_that_job_and_the_worker_goes_on(
    werk_server: ServerProcess,
    client: Client,
    start_worker: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = Runner.run

    async def run_with_a_bug(self: Runner, job: dict[str, Any]) -> Any:
        if job["jobtype"] == "trips_a_bug":
            raise RuntimeError("a bug in the runner")
        return await run(self, job)

    monkeypatch.setattr(Runner, "run", run_with_a_bug)
    worker = Worker(werk_server.url, concurrency=1)
    worker.add("trips_a_bug", lambda: None)
    worker.add("fine", lambda: "fine")
    crashing = client.push(Job("trips_a_bug", [], result_ttl=60))
    last = client.push(Job("fine", [], result_ttl=60))
    task = start_worker(worker)
    assert await asyncio.to_thread(client.result, last, 15) == "fine"
    assert not task.done()
    state = client.job_state(crashing)
    assert state.state == "retrying" and (state.error or {})["errtype"] == "RuntimeError"
    assert any(r.levelname == "CRITICAL" and "a bug in werk" in r.message for r in caplog.records)
