"""npm ``faktory-worker`` 4.7.x against a real ``werk server``.

The scenarios live in ``tests/compat/node/scenario.js`` and use the client's public API
(``Client.job().push()``, ``push``, ``pushBulk``, ``fetch``, ``ack``, ``fail``, ``info``,
``flush``, the ``scheduled``/``retries``/``dead`` mutation builders, ``Worker``). The client has
no queue-control API, so pausing and resuming use its raw ``Client.send([...])`` facility. Each
scenario prints one line of JSON with what it saw; the assertions are made here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.compat.support import summary
from tests.conftest import require
from tests.helpers import ServerProcess

NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture(scope="module")
def node_project() -> Path:
    """The npm project with ``faktory-worker`` installed (``npm ci`` on a fresh checkout)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    require(node is not None and npm is not None, "node and npm are needed for faktory-worker")
    assert npm is not None
    if not (NODE_DIR / "node_modules" / "faktory-worker" / "package.json").exists():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=100,
        )
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    return NODE_DIR


@pytest.fixture
def werk_server(flushed_server: ServerProcess) -> ServerProcess:
    """The module's server on each backend, FLUSHed before each scenario. Every scenario is
    a node process that has exited (its connections closed) before the next one starts, so
    nothing of one reaches the next but the worker process records FLUSH keeps."""
    return flushed_server


def scenario(project: Path, url: str, name: str, timeout: float = 45) -> dict[str, Any]:
    """Run ``node scenario.js <name>`` against ``url`` and return its JSON result."""
    env = {**os.environ, "FAKTORY_URL": url}
    env.pop("FAKTORY_PROVIDER", None)
    done = subprocess.run(
        ["node", "scenario.js", name],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, (
        f"node scenario {name} exited {done.returncode}\n"
        f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"node scenario {name} printed nothing; stderr:\n{done.stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def test_push_fetch_ack(node_project: Path, werk_server: ServerProcess) -> None:
    out = scenario(node_project, werk_server.url, "push_fetch_ack")
    assert out["pushed"] == "node-jid-0001"
    assert summary(out["infoQueued"])["queues"] == {"default": 1}
    # node reads these INFO fields directly
    assert out["infoQueued"]["server_utc_time"]
    assert out["infoQueued"]["faktory"]["queues"]["default"] == 1

    job = out["fetched"]
    assert (job["jid"], job["jobtype"], job["args"], job["queue"]) == (
        "node-jid-0001",
        "Add",
        [1, 2],
        "default",
    )
    assert job["custom"] == {"trace": "abc"}
    assert (job["retry"], job["priority"]) == (25, 5)
    assert job["enqueued_at"]
    assert summary(out["infoWorking"])["working"] == 1

    assert out["ack"] == "OK"
    done = summary(out["infoDone"])
    assert (done["queues"], done["working"], done["processed"], done["failures"]) == ({}, 0, 1, 0)


def test_push_bulk(node_project: Path, werk_server: ServerProcess) -> None:
    out = scenario(node_project, werk_server.url, "push_bulk")
    # the invalid job (jid shorter than 8 chars) is reported by jid; the others are queued
    assert list(out["rejected"]) == ["short"]
    # Faktory's text: the bare message (the Node client shows it to users as it is)
    assert out["rejected"]["short"]["reason"] == "jobs must have a reasonable jid parameter"
    assert summary(out["info"])["queues"] == {"default": 2}


def test_fail_lands_in_retries_at_once(node_project: Path, werk_server: ServerProcess) -> None:
    out = scenario(node_project, werk_server.url, "fail")
    assert out["failed"] == "OK"
    assert out["info"]["faktory"]["tasks"]["Retries"]["size"] == 1
    assert out["info"]["faktory"]["sets"]["retries"] == 1
    after = summary(out["info"])
    assert (after["processed"], after["failures"], after["working"], after["queues"]) == (
        1,
        1,
        0,
        {},
    )
    # a second FAIL of the same (no longer reserved) jid is a clean error, not a hang
    assert out["again"] is not None and out["again"].startswith("ERR ")


def test_scheduled_job_runs_when_due(node_project: Path, werk_server: ServerProcess) -> None:
    out = scenario(node_project, werk_server.url, "schedule")
    assert out["sentAt"].endswith("Z")  # JS toISOString() format
    assert out["infoScheduled"]["faktory"]["tasks"]["Scheduled"]["size"] == 1
    assert summary(out["infoScheduled"])["queues"] == {}
    assert out["fetched"] is not None, "scheduled job never became fetchable"
    assert out["fetched"]["jid"] == "node-sched-01"
    assert out["elapsedMs"] >= 900, out["elapsedMs"]
    assert summary(out["infoDue"])["scheduled"] == 0
    # the job came out when due, not early
    enqueued = datetime.fromisoformat(out["fetched"]["enqueued_at"])
    assert enqueued >= datetime.fromisoformat(out["sentAt"])


def test_mutate(node_project: Path, werk_server: ServerProcess) -> None:
    out = scenario(node_project, werk_server.url, "mutate")
    states = [
        (label, (s["scheduled"], s["retries"], s["dead"], s["queues"]))
        for label, s in ((label, summary(info)) for label, info in out["steps"])
    ]
    assert states == [
        ("setup", (3, 3, 0, {})),
        ("discard scheduled jobtype", (1, 3, 0, {})),
        ("kill scheduled jid", (0, 3, 1, {})),
        ("discard retries regexp", (0, 2, 1, {})),
        ("requeue retries jid", (0, 1, 1, {"default": 1})),
        ("kill retries jobtype", (0, 0, 2, {})),
        ("requeue dead jid", (0, 0, 1, {"default": 1})),
        ("clear dead", (0, 0, 0, {"default": 1})),
        ("clear scheduled and retries", (0, 0, 0, {"default": 1})),
    ]
    requeued = out["requeued"]
    assert requeued["jid"] == "node-r-2"
    assert requeued["failure"]["message"] == "m"
    # node sends errtype `${e.code}`, i.e. the string "undefined", and it is kept as sent
    assert requeued["failure"]["errtype"] == "undefined"


def test_pause_and_resume(node_project: Path, werk_server: ServerProcess) -> None:
    out = scenario(node_project, werk_server.url, "pause")
    assert out["paused"] == "OK"
    assert out["skipped"]["jid"] == "node-low-01"  # "high" was listed first but is paused
    assert out["whilePaused"] is None
    assert summary(out["infoPaused"])["queues"] == {"high": 1}
    assert out["resumed"] == "OK"
    assert out["afterResume"] is not None and out["afterResume"]["jid"] == "node-high-1"


def test_password(node_project: Path, werk_server_factory: Any) -> None:
    server = werk_server_factory(password="s3cret-pw")
    out = scenario(node_project, server.url, "auth")
    assert out["pushed"] == "node-auth-01"
    assert summary(out["info"])["queues"] == {"default": 1}
    assert out["wrongPassword"] is not None and "Invalid password" in out["wrongPassword"]
    assert out["noPassword"] is not None and "Invalid password" in out["noPassword"]


def test_worker_loop(node_project: Path, werk_server: ServerProcess) -> None:
    out = scenario(node_project, werk_server.url, "worker")
    assert out["errors"] == []  # includes heartbeat (BEAT) failures
    jobs = out["jobs"]
    assert sorted(out["results"]) == [2 * i for i in range(jobs)]
    assert out["failed"] == ["node-boom-01"]
    done = summary(out["info"])
    assert (done["processed"], done["failures"], done["working"]) == (jobs + 1, 1, 0)
    assert (done["queues"], done["retries"]) == ({}, 1)
    assert out["beatAfterFlush"] == "ok"
