"""An ``async def`` job that blocks the event loop under a real ``werk worker``: named in a
warning, and reported ``JobTimeout`` once past its timeout."""

from __future__ import annotations

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
    import time
    from werk.client import Worker

    worker = Worker(concurrency=3)

    @worker.register(timeout=1)
    async def blocker(seconds):
        time.sleep(seconds)  # no await: the loop is held
        return 1

    @worker.register
    def quick():
        pass
    """
)


@SQLITE_ONLY
def test_a_job_holding_the_loop_is_named_and_times_out(
    tmp_path: Path, werk_server: ServerProcess, client: Client
) -> None:
    proc = start_cli_worker(
        tmp_path, werk_server, JOBS, "stall_jobs:worker", stderr=subprocess.PIPE, text=True
    )
    # Given a job blocking the loop for 3 s past its timeout of 1 s, and a short one blocking
    # it for 0.1 s within it
    try:
        client.push_bulk([Job("blocker", [3], jid="blocker-three", retry=1), Job("blocker", [0.1])])
        client.push(Job("quick", []))
        wait_until(lambda: client.info()["faktory"]["total_processed"] >= 3)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    # Then the worker names the job holding its loop, and how long it held it
    (warning,) = [line for line in err.splitlines() if "held the event loop for" in line]
    assert warning.startswith("W ")
    assert "job blocker-three blocker: held the event loop for" in warning
    held = float(warning.split("held the event loop for ")[1].split("s")[0])
    assert 2.5 <= held <= 4.0
    # And the job past its timeout is reported once as JobTimeout, the other as done
    info = client.info()["faktory"]
    assert info["total_failures"] == 1
    (retry,) = client.jobs("retries").entries
    assert retry.jid == "blocker-three" and (retry.failure or {})["errtype"] == "JobTimeout"
    assert "held the event loop after its timeout of 1s" in (retry.failure or {})["message"]
