"""The examples of the user docs work: the batch examples of docs/enterprise.md and the
limiter example of docs/cron-and-limits.md run against a real server, the testing example of
docs/howto/web-frameworks.md runs with no server, the configuration
examples of docs/cron-and-limits.md (and the sample file's) are accepted by the server's own
checks, and a bucket limiter behaves at a boundary as that page says."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from tests.client.conftest import wait_until
from tests.docblocks import ROOT, Output, blocks_run_by, write_files
from tests.helpers import ServerProcess
from werk.client import Client
from werk.client.limits import RateLimited, limiter
from werk.server.cron import check_settings


def run_script(name: str, cwd: Path, env: dict[str, str]) -> str:
    """Run an example script to its end (30 s at most); return its output, asserting it
    exited 0."""
    done = subprocess.run(
        [sys.executable, name], cwd=cwd, env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_batch_example_runs_the_success_callback(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        work = tmp_path / "example"
        blocks = blocks_run_by("tests/test_doc_examples.py", "docs/enterprise.md")
        assert write_files(blocks, work) == {
            "import_batch.py",
            "import_worker.py",
            "import_batch_tasks.py",
        }
        bin_dir = str(Path(sys.executable).parent)
        env = {**os.environ, "WERK_URL": server.url, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
        worker = Output(["werk", "worker", "import_worker:worker"], work, env)
        try:
            assert run_script("import_batch.py", work, env).startswith("3 jobs in b-")
            wait_until(lambda: "all of users.csv imported" in worker.text, timeout=20)
            before = worker.text.split("all of users.csv imported")[0]
            assert all(f"imported {name}" in before for name in ("ada", "grace", "edsger"))
            # the task API's variant: with_options(custom={"bid": ...}) keeps unique_for
            assert run_script("import_batch_tasks.py", work, env).startswith("2 jobs in b-")
            wait_until(lambda: "all of admins.csv imported" in worker.text, timeout=20)
            before = worker.text.split("all of admins.csv imported")[0]
            assert "imported barbara" in before and "imported alan" in before
        finally:
            worker.stop()
    finally:
        server.kill()


def test_cron_and_throttle_examples_are_valid_configuration() -> None:
    blocks = blocks_run_by("tests/test_doc_examples.py", "docs/cron-and-limits.md")
    sample = ROOT / "packaging" / "conf.d" / "werk.toml"
    # The sample file's commented cron and throttles examples, uncommented
    commented = [
        line[2:]
        for line in sample.read_text().splitlines()
        if line.startswith("# [[cron]]")
        or line.startswith(("#   ", "# [throttles]", "# pdf", "# mail"))
    ]
    texts = [block.code for block in blocks if block.language == "toml"] + ["\n".join(commented)]
    assert len(texts) >= 3
    for text in texts:
        settings = tomllib.loads(text)
        assert settings.get("cron") or settings.get("throttles"), text
        check_settings(settings)  # raises ConfigError naming the entry when it is invalid


def test_limiter_example_runs_on_a_worker(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        work = tmp_path / "example"
        blocks = blocks_run_by("tests/test_doc_examples.py", "docs/cron-and-limits.md")
        assert write_files(blocks, work) == {"billing_tasks.py"}
        bin_dir = str(Path(sys.executable).parent)
        env = {**os.environ, "WERK_URL": server.url, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
        push = "from billing_tasks import charge, render_invoice\n" + "".join(
            f"charge.push({n})\nrender_invoice.push({n})\n" for n in range(1, 4)
        )
        (work / "push_billing.py").write_text(push)
        worker = Output(["werk", "worker", "billing_tasks:worker"], work, env)
        try:
            run_script("push_billing.py", work, env)
            for n in range(1, 4):
                wait_until(lambda n=n: f"charged order {n}" in worker.text, timeout=20)
                wait_until(lambda n=n: f"rendered invoice {n}" in worker.text, timeout=20)
        finally:
            worker.stop()
    finally:
        server.kill()


def test_bucket_lets_twice_its_limit_through_across_a_boundary(tmp_path: Path) -> None:
    # docs/cron-and-limits.md: with limit=2 period=10, 4 calls pass within 2 s across a
    # boundary of the bucket's fixed clock intervals; a window limiter refuses the third.
    # The interval arithmetic is shared by every store (werk.storage.limits): SQLite is enough.
    server = ServerProcess(tmp_path / "data").start()
    try:
        check_bucket_boundary(server.url)
    finally:
        server.kill()


def check_bucket_boundary(url: str) -> None:
    with Client(url) as client:
        time.sleep((8.5 - time.time() % 10) % 10)  # 8.5 s into an interval
        started = time.monotonic()
        for _ in range(2):
            with limiter(client, "doc-bucket", kind="bucket", limit=2, period=10):
                pass
            with limiter(client, "doc-window", kind="window", limit=2, period=10):
                pass
        time.sleep(10 - time.time() % 10 + 0.1)  # just after the next boundary
        for _ in range(2):
            with limiter(client, "doc-bucket", kind="bucket", limit=2, period=10):
                pass
        assert time.monotonic() - started < 3.5
        with pytest.raises(RateLimited):
            with limiter(client, "doc-window", kind="window", limit=2, period=10):
                pass


def test_inline_testing_example_runs_the_job_in_the_test(tmp_path: Path) -> None:
    # docs/howto/web-frameworks.md's "Testing your app": no server at all; WERK_URL names
    # a closed port, so a push that reached for a real Client would fail.
    work = tmp_path / "example"
    blocks = blocks_run_by("tests/test_doc_examples.py", "docs/howto/web-frameworks.md")
    assert write_files(blocks, work) == {"test_signup.py"}
    (work / "run_test.py").write_text(
        "import test_signup\n\ntest_signup.test_signup_sends_the_welcome_mail()\nprint('ok')\n"
    )
    env = {**os.environ, "WERK_URL": "tcp://127.0.0.1:9"}
    assert run_script("run_test.py", work, env).strip() == "ok"
    # and mypy --strict accepts the InlineClient as the default client (pushed.TaskClient)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "test_signup.py"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "error:" not in done.stdout, done.stdout
