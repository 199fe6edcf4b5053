"""docs/howto/migrating.md's Celery examples work: the chain, chord, revoke, retry and
middleware modules run against a real server and a real ``werk worker``, and the beat
example is valid ``[[cron]]`` configuration."""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path

from tests.client.conftest import wait_until
from tests.docblocks import Output, blocks_run_by, write_files
from tests.helpers import ServerProcess
from tests.test_doc_examples import run_script
from werk.client import Client
from werk.server.cron import check_settings

DOC = "docs/howto/migrating.md"


def test_celery_examples_run_on_a_worker(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        work = tmp_path / "example"
        names = write_files(blocks_run_by("tests/test_doc_migrating.py", DOC), work)
        assert names == {"shop_tasks.py", "shop_push.py"}
        bin_dir = str(Path(sys.executable).parent)
        env = {**os.environ, "WERK_URL": server.url, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
        worker = Output(["werk", "worker", "shop_tasks:worker"], work, env)
        try:
            # Given the worker, when the producer script runs
            out = run_script("shop_push.py", work, env)
            # Then the revoked job is gone from the scheduled set
            assert "revoked: True" in out and "scheduled: 0" in out
            # and the job still waiting in its queue was deleted
            assert "deleted: True" in out
            # and the chain ran in order, the chord's callback summed the parts' results,
            # and the job with retry=-1 reached the dead set once, calling the hook
            wait_until(lambda: "invoice total 11" in worker.text, timeout=20)
            wait_until(lambda: "charged order 42 in job " in worker.text, timeout=20)
            wait_until(lambda: "gave up on import_sku: " in worker.text, timeout=20)
            assert worker.text.index("fetched order 42") < worker.text.index("charged order 42")
            assert "start fetch_order [42]" in worker.text
            assert "end import_sku: failed" in worker.text
            with Client(server.url) as client:
                sets = client.info()["faktory"]["sets"]
            assert sets["dead"] == 1 and sets["retries"] == 0 and sets["scheduled"] == 0
            assert client.info()["faktory"]["queues"].get("shop-later", 0) == 0
        finally:
            worker.stop()
    finally:
        server.kill()


def test_beat_example_is_valid_cron_configuration() -> None:
    blocks = [b for b in blocks_run_by("tests/test_doc_migrating.py", DOC) if b.language == "toml"]
    assert blocks
    for block in blocks:
        settings = tomllib.loads(block.code)
        assert settings["cron"][0]["job"]["type"] == "cleanup_sessions"
        check_settings(settings)
