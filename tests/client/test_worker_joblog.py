"""``werk worker``'s lines from inside a job: an application's log lines carry the job's
jid and jobtype, and under ``--log-format json`` a job's prints are JSON lines too."""

from __future__ import annotations

import json
import signal
import subprocess
import textwrap
from pathlib import Path

from tests.client.conftest import start_cli_worker, wait_until
from tests.conftest import SQLITE_ONLY
from tests.helpers import ServerProcess
from werk.client import Client, Job

JOBS = textwrap.dedent(
    """
    import logging, sys
    from werk.client import Worker

    log = logging.getLogger("myapp.jobs")
    worker = Worker(concurrency=2)

    @worker.register
    def chatty(n):
        log.info("app info line %d", n)
        print("a print line", n)
        print("to stderr", n, file=sys.stderr)

    @worker.register
    async def achatty(n):
        log.warning("async app line %d", n)
        print("an async print line", n)
    """
)


def run(tmp_path: Path, server: ServerProcess, client: Client, *flags: str) -> tuple[str, str]:
    """Run two jobs on a ``werk worker`` with ``flags``; return its stdout and stderr."""
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    proc = start_cli_worker(tmp_path, server, JOBS, "log_jobs:worker", *flags, **streams)
    try:
        client.push_bulk(
            [Job("chatty", [1], jid="jidchatty1"), Job("achatty", [2], jid="jidasync2")]
        )
        wait_until(lambda: client.info()["faktory"]["total_processed"] >= 2)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    return out, err


@SQLITE_ONLY
def test_json_lines_of_a_job_carry_its_context_and_prints_are_json(
    tmp_path: Path, werk_server: ServerProcess, client: Client
) -> None:
    out, err = run(tmp_path, werk_server, client, "--log-format", "json")
    # Then nothing but JSON comes out, on either stream
    assert out == ""
    entries = [json.loads(line) for line in err.splitlines()]
    by_msg = {entry["msg"]: entry for entry in entries}
    # And an application's lines and the job's prints carry the job's jid and jobtype
    app = by_msg["app info line 1"]
    assert (app["logger"], app["level"]) == ("myapp.jobs", "info")
    assert (app["jid"], app["jobtype"]) == ("jidchatty1", "chatty")
    printed = by_msg["a print line 1"]
    assert (printed["logger"], printed["level"], printed["jid"]) == ("stdout", "info", "jidchatty1")
    assert (by_msg["to stderr 1"]["logger"], by_msg["to stderr 1"]["level"]) == (
        "stderr",
        "warning",
    )
    assert by_msg["async app line 2"]["jid"] == "jidasync2"
    assert by_msg["an async print line 2"]["jobtype"] == "achatty"
    # And lines from outside a job carry none
    assert not [e for e in entries if "starting: server" in e["msg"] and "jid" in e]


@SQLITE_ONLY
def test_text_lines_of_a_job_name_it_and_prints_stay_as_they_are(
    tmp_path: Path, werk_server: ServerProcess, client: Client
) -> None:
    out, err = run(tmp_path, werk_server, client)
    assert "Z [chatty jidchatty1] app info line 1\n" in err
    assert "Z [achatty jidasync2] async app line 2\n" in err
    assert "to stderr 1\n" in err.splitlines(keepends=True)
    assert sorted(out.splitlines()) == ["a print line 1", "an async print line 2"]
    # the worker's own job lines name the job already: no prefix on them
    assert "[chatty" not in next(line for line in err.splitlines() if "done in" in line)
