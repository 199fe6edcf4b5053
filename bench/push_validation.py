"""What strict input checking (issue 13) costs a PUSH: decode, validate and encode one job,
and a PUSHB of 1,000, before and after, interleaved in one process.

    .venv/bin/python bench/push_validation.py --before <commit> [--rounds 9]

"Before" is ``werk/job.py`` of ``--before`` (taken with ``git archive``) with the standard
``json`` module, as PUSH read its argument there; "after" is this checkout's
:mod:`werk.protocol.jsonwire` and :mod:`werk.job`. Prints the median and the fastest
round of each, in microseconds, and their ratios. Only the argument path is timed: the
store, the socket and the event loop are the same on both sides and would only add noise.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from werk import job as after_job
from werk.protocol import jsonwire

ROOT = Path(__file__).resolve().parent.parent
LINE = (
    b'{"jid":"abcdefghij12","jobtype":"SomeWorker","args":[1,"two",{"three":3}],'
    b'"queue":"default","retry":5,"custom":{"a":1}}'
)
BULK = b"[" + b",".join([LINE] * 1000) + b"]"
NOW = 1.7e9


def job_module_of(commit: str) -> ModuleType:
    """Load ``src/werk/job.py`` of ``commit`` as a module of its own."""
    target = Path(tempfile.mkdtemp(prefix="werk-before-"))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "src/werk/job.py"],
        check=True,
        capture_output=True,
    ).stdout
    with tempfile.TemporaryFile() as handle:
        handle.write(archive)
        handle.seek(0)
        with tarfile.open(fileobj=handle) as tar:
            tar.extractall(target, filter="data")
    spec = importlib.util.spec_from_file_location("before_job", target / "src/werk/job.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def per_call(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="commit to compare with")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    before = job_module_of(args.before)

    def before_one() -> object:
        return before_one_of(json.loads(LINE))

    def after_one() -> object:
        return jsonwire.dumps(after_job.validate(jsonwire.loads(LINE), NOW))

    def before_bulk() -> object:
        return [before_one_of(job) for job in json.loads(BULK)]

    def before_one_of(job: object) -> object:
        return json.dumps(before.validate(job, NOW), separators=(",", ":")).encode()

    def after_bulk() -> object:
        loaded = jsonwire.loads(BULK, max_depth=jsonwire.MAX_DEPTH + 1)
        return [jsonwire.dumps(after_job.validate(job, NOW)) for job in loaded]

    parsed = json.loads(LINE)
    cases = (
        ("decode one job", lambda: json.loads(LINE), lambda: jsonwire.loads(LINE), 20000),
        (
            "validate one job",
            lambda: before.validate(dict(parsed), NOW),
            lambda: after_job.validate(dict(parsed), NOW),
            20000,
        ),
        ("encode one job", lambda: before_one_of(parsed), lambda: jsonwire.dumps(parsed), 20000),
        ("PUSH, one job", before_one, after_one, 20000),
        ("PUSHB, 1,000 jobs", before_bulk, after_bulk, 20),
    )
    for name, old, new, n in cases:
        olds, news = [], []
        for _ in range(args.rounds):  # interleaved: both see the same moments of the machine
            olds.append(per_call(old, n))
            news.append(per_call(new, n))
        a, b = statistics.median(olds), statistics.median(news)
        low_a, low_b = min(olds), min(news)  # the least disturbed round of each
        print(
            f"{name}: median before {a:.2f} us, after {b:.2f} us ({b / a:.3f});"
            f" fastest before {low_a:.2f} us, after {low_b:.2f} us ({low_b / low_a:.3f})"
        )


if __name__ == "__main__":
    main()
