"""The push path before and after, side by side in one run; writes its section of
docs/benchmarks.md.

Usage (from the repository root, after ``make install``; needs ``redis-server`` on PATH)::

    .venv/bin/python bench/push_path.py [--rounds 3] [-n 5000] [--before 6e3b51d]

"Before" is the server as of commit ``--before`` (its ``src/`` is taken with ``git archive``
and put first on the server subprocesses' ``PYTHONPATH``); "after" is this checkout. Each
round runs every server in turn, so both see the same moments of a shared machine, and
every figure is the median of the rounds. The drivers are the raw protocol connections of
:mod:`werk.benchmarks.raw` (the same bytes for every server); PUSHB uses Werk's client.
Redis runs in a ``redis-server`` this script starts on a spare port, without persistence
(as Faktory keeps its jobs), and stops.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from werk.benchmarks import pushpath
from werk.benchmarks.scenarios import push_bulk

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- push-path:start -->", "<!-- push-path:end -->"
ANALYSIS = "<!-- push-path:analysis -->"
REDIS_PORT = 6391


def checkout_src(commit: str) -> Path:
    """Extract ``src/`` of ``commit`` into a temporary directory; return its ``src``."""
    target = Path(tempfile.mkdtemp(prefix="werk-before-"))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "src"], check=True, capture_output=True
    ).stdout
    with tempfile.TemporaryFile() as handle:
        handle.write(archive)
        handle.seek(0)
        with tarfile.open(fileobj=handle) as tar:
            tar.extractall(target, filter="data")
    return target / "src"


def run_with(pythonpath: str | None, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``fn`` with the server subprocesses importing Werk from ``pythonpath``."""
    saved = os.environ.pop("PYTHONPATH", None)
    if pythonpath:
        os.environ["PYTHONPATH"] = pythonpath
    try:
        return fn()
    finally:
        os.environ.pop("PYTHONPATH", None)
        if saved is not None:
            os.environ["PYTHONPATH"] = saved


def measure(before: str, n: int, redis_url: str) -> dict[str, dict[str, Any]]:
    """One round: every (server, storage) pair once."""
    results: dict[str, dict[str, Any]] = {}
    for label, path in (("before", before), ("after", None)):
        modes = ("fsync",) if path else ("fsync", "os")  # "os" is new
        results[f"{label}.sqlite"] = run_with(
            path, lambda modes=modes: pushpath.push_path("sqlite", n, modes)
        )
        results[f"{label}.sqlite"]["pushb_per_s"] = run_with(
            path, lambda: push_bulk("sqlite", 20_000)
        )["jobs_per_s"]
        results[f"{label}.redis"] = run_with(path, lambda: pushpath.push_path(redis_url, n))
        results[f"{label}.redis"]["pushb_per_s"] = run_with(
            path, lambda: push_bulk(redis_url, 20_000)
        )["jobs_per_s"]
    results["clients"] = pushpath.push_clients("sqlite", n)
    results["clients.os"] = pushpath.push_clients("sqlite", n, durability="os")
    return results


def medians(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """The median of every figure over the rounds."""
    return {
        group: {key: statistics.median(r[group][key] for r in rounds) for key in figures}
        for group, figures in rounds[0].items()
    }


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _ms(value: float) -> str:
    return f"{value:.2f}"


def _x(value: float) -> str:
    return f"{value:.2f}x"


SQLITE_ROWS = (
    ("bare SQLite commit, WAL + `synchronous = FULL`, one row (/s)", "sqlite_commit_per_s", _n),
    ("one producer's PUSH / bare SQLite commit rate", "push_1_vs_sqlite_commit", _x),
    ("PUSHes per commit, 16 connections", "push_16_per_commit", _ms),
    ("mean commit time, 16 connections (ms)", "push_16_commit_ms", _ms),
)
"""Rows of the embedded store only (a server from before a figure existed leaves it blank)."""


def render(m: dict[str, dict[str, float]], meta: dict[str, Any]) -> str:
    """The Markdown section (between the push-path markers)."""
    b, a = m["before.sqlite"], m["after.sqlite"]
    br, ar = m["before.redis"], m["after.redis"]
    rows = [
        ("PUSH, one connection, each waiting for `+OK` (jobs/s)", "push_1_per_s", _n),
        ("PUSH, 16 connections (jobs/s)", "push_16_per_s", _n),
        ("PUSH -> FETCH reply, p50 (ms)", "push_to_fetch_p50_ms", _ms),
        ("PUSH -> FETCH reply, p99 (ms)", "push_to_fetch_p99_ms", _ms),
        ("server CPU per PUSH, one connection (us)", "push_1_cpu_us", _n),
        ("server CPU per PUSH, 16 connections (us)", "push_16_cpu_us", _n),
        ("server CPU per FETCH+ACK (us)", "fetch_ack_cpu_us", _n),
    ]
    lines = [
        "## Push path and durability",
        "",
        f"Measured {meta['when']}, {meta['rounds']} rounds of N = {meta['n']} (medians), by",
        "`.venv/bin/python bench/push_path.py`: every server in turn in each round, raw",
        "protocol connections (the same bytes for every server), a fresh server per cell.",
        f"Load average before and after the run: {meta['load']}. Compare the columns of this",
        "one run, not absolute figures across runs (the disk's fsync rate and the other load",
        f"on the 2 cores move between runs). *Before* is commit `{meta['before']}`; Redis",
        "runs without persistence.",
        "",
        "The raw write+fsync rate (300-byte appends, each fsynced, on the data directory's",
        "disk) is measured for half a second right before and right after each one-producer",
        "run, and that run is compared with the mean of the two; a bare SQLite commit (one",
        "row, WAL, `synchronous = FULL`, no server) is timed right after it.",
        "",
        "| | SQLite `fsync`, before | SQLite `fsync`, after | SQLite `os`, after"
        " | Redis, before | Redis, after |",
        "|---|---|---|---|---|---|",
    ]
    for title, key, fmt in rows:
        cells = [b[f"fsync.{key}"], a[f"fsync.{key}"], a[f"os.{key}"]]
        cells += [br[f"backend.{key}"], ar[f"backend.{key}"]]
        lines.append(f"| {title} | " + " | ".join(fmt(c) for c in cells) + " |")
    lines.append(
        "| raw write+fsync around the one-producer run (/s) | "
        f"{_n(b['fsync.fsync_per_s'])} | {_n(a['fsync.fsync_per_s'])} | {_n(a['os.fsync_per_s'])}"
        " | | |"
    )
    lines.append(
        "| one producer's PUSH / raw fsync rate | "
        f"{b['fsync.push_1_vs_fsync']:.2f}x | {a['fsync.push_1_vs_fsync']:.2f}x"
        f" | {a['os.push_1_vs_fsync']:.2f}x | | |"
    )
    for title, key, fmt in SQLITE_ROWS:
        cells = [b.get(f"fsync.{key}"), a.get(f"fsync.{key}"), a.get(f"os.{key}")]
        text = " | ".join("" if c is None else fmt(c) for c in cells)
        lines.append(f"| {title} | {text} | | |")
    lines.append(
        "| PUSHB of 1,000, Werk's client (jobs/s) | "
        f"{_n(b['pushb_per_s'])} | {_n(a['pushb_per_s'])} | | {_n(br['pushb_per_s'])}"
        f" | {_n(ar['pushb_per_s'])} |"
    )
    lines += [
        "",
        "Python clients, sequential `push` from one thread on one server (jobs/s; the",
        "clients take turns, 1/10 of N at a time):",
        "",
        "| client | SQLite `fsync` | SQLite `os` |",
        "|---|---|---|",
    ]
    c, co = m["clients"], m["clients.os"]
    for name, label in (
        ("werk_client", "Werk `Client.push`"),
        ("faktory", "`faktory` 1.0 (`Client.queue`)"),
        ("pyfaktory", "`pyfaktory` 0.2 (`Producer.push`)"),
        ("raw", "raw protocol connection"),
    ):
        if f"{name}_per_s" in c:
            lines.append(f"| {label} | {_n(c[f'{name}_per_s'])} | {_n(co[f'{name}_per_s'])} |")
    return "\n".join(lines) + "\n"


def write_doc(section: str) -> None:
    """Replace the generated part of the section (from its start marker to the analysis
    marker), keeping the analysis written by hand below it; add the section if missing."""
    text = DOC.read_text()
    if START in text and ANALYSIS in text:
        head, rest = text.split(START, 1)
        DOC.write_text(head + START + "\n" + section + "\n" + ANALYSIS + rest.split(ANALYSIS, 1)[1])
    else:
        block = f"{START}\n{section}\n{ANALYSIS}\n{END}\n"
        DOC.write_text(text.rstrip("\n") + "\n\n" + block)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--before", default="6e3b51d")
    args = parser.parse_args()
    before = str(checkout_src(args.before))
    redis = subprocess.Popen(
        ["redis-server", "--port", str(REDIS_PORT), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        url = f"redis://127.0.0.1:{REDIS_PORT}/0"
        load_before = os.getloadavg()[0]
        rounds = []
        for number in range(args.rounds):
            rounds.append(measure(before, args.n, url))
            print(f"round {number + 1}: {json.dumps(rounds[-1])}", flush=True)
    finally:
        redis.terminate()
        redis.wait(10)
    result = medians(rounds)
    meta = {
        "load": f"{load_before:.2f} and {os.getloadavg()[0]:.2f}",
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rounds": args.rounds,
        "n": args.n,
        "before": args.before,
    }
    (ROOT / "bench" / "push_path.json").write_text(json.dumps({**meta, **result}, indent=2))
    write_doc(render(result, meta))
    print(f"wrote {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
