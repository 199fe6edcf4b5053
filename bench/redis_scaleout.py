"""Werk on Redis against Werk on SQLite and the peers, in one run; writes the Redis section
of docs/benchmarks.md.

Usage (from the repository root, after ``make install`` and the peers' venv, see
bench/run_all.py)::

    .venv/bin/python bench/redis_scaleout.py [--quick] [--no-peers] [--port N] [--render]

It starts a redis-server of its own (no persistence: ``--save "" --appendonly no``) on a
free port, or on ``--port``, so that Redis' own command and CPU counters hold Werk's
traffic alone, and stops it at the end. Every figure is a median of 3 rounds (1 with
``--quick``, which also runs fewer jobs), and every system runs in the same run,
so the ratios compare like with like. It prints the issue's goals with the measured
figures at the end. ``--no-peers`` skips Huey, Dramatiq and Taskiq (an A/B of Werk alone,
a few minutes with ``--quick``): the Huey ratio then reads "not run", and the run goes to
bench/results-redis-werk.json only, leaving docs/benchmarks.md alone.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from run_all import PEERS, machine, peer_bench, werk_bench  # noqa: E402

SECTION = ROOT / "bench" / "redis-scaleout.md"
RESULTS = ROOT / "bench" / "results-redis.json"
RESULTS_WERK = ROOT / "bench" / "results-redis-werk.json"
START, END = "<!-- redis-scaleout:start -->", "<!-- redis-scaleout:end -->"
SCENARIOS = (
    "drain_raw",
    "drain",
    "drain_async",
    "costs",
    "push_single",
    "push_producers",
    "push_path",
)


def start_redis(port: int = 0) -> tuple[subprocess.Popen[bytes], int]:
    """Start a private redis-server without persistence (on a free port for 0); return it
    and its port."""
    if not port:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--appendonly", "no", "--dir", tempfile.mkdtemp(prefix="werk-bench-redis-")]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def write(r: dict[str, Any]) -> None:
    """Render the results into bench/redis-scaleout.md and docs/benchmarks.md."""
    from redis_report import render

    SECTION.write_text(render(r))
    splice(ROOT / "docs" / "benchmarks.md", SECTION.read_text())
    print(f"wrote {SECTION.relative_to(ROOT)} and docs/benchmarks.md", flush=True)


def main() -> None:
    if "--render" in sys.argv:  # again from bench/results-redis.json, without running
        write(json.loads(RESULTS.read_text()))
        return
    quick = "--quick" in sys.argv
    peers = () if "--no-peers" in sys.argv else PEERS
    port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 0
    rounds = 1 if quick else 3
    n = {"drain_raw": 20_000, "push_single": 10_000, "push_producers": 20_000, "push_path": 5_000}
    # Quick: a fifth of the small scenarios' jobs, and 20,000 for the drains and costs (fewer
    # and the costs per job would be mostly the workers' start and connect).
    big = 20_000 if quick else 50_000
    redis_proc, port = start_redis(port)
    url = f"redis://127.0.0.1:{port}/3"
    os.environ["BENCH_REDIS_URL"] = f"redis://127.0.0.1:{port}/4"
    r: dict[str, Any] = {
        "machine": machine(),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load": os.getloadavg()[0],
        "redis": subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
        .stdout.split()[2]
        .removeprefix("v="),
    }
    runs: dict[str, list[dict[str, Any]]] = {}

    def record(key: str, result: dict[str, Any]) -> None:
        runs.setdefault(key, []).append(result)
        print(key, result, flush=True)

    try:
        # Round by round, every system in turn: the machine's load drifts, and each
        # round then puts every system under the same drift.
        for _ in range(rounds):
            for scenario in SCENARIOS:
                size = n[scenario] // (5 if quick else 1) if scenario in n else big
                for key, storage in (("sqlite", "sqlite"), ("redis", url)):
                    record(f"{key}.{scenario}", werk_bench(scenario, storage, size, 1))
            record("redis.drain_two_servers", werk_bench("drain_two_servers", url, big, 1))
            for system in peers:
                record(f"peer.{system}", peer_bench(system, big, 1))
    finally:
        redis_proc.terminate()
        redis_proc.wait(10)
    r["load_end"] = os.getloadavg()[0]
    for key, results in runs.items():
        r[key] = medians(results)
    if not peers:
        RESULTS_WERK.write_text(json.dumps(r, indent=2))
        print(f"wrote {RESULTS_WERK.relative_to(ROOT)} (docs/benchmarks.md left alone)")
    else:
        RESULTS.write_text(json.dumps(r, indent=2))
        write(r)
    from redis_report import summary

    print(summary(r))


def medians(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the median of every number over rounds (other fields from the first)."""
    out = dict(results[0])
    for field, value in results[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[field] = statistics.median(r[field] for r in results)
    out["rounds"] = len(results)
    out["n"] = results[0].get("n")
    return out


def splice(doc: Path, section: str) -> None:
    """Put ``section`` between the markers of ``doc`` (appended with them if absent)."""
    text = doc.read_text()
    block = f"{START}\n{section.rstrip()}\n{END}\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        text = head + block + ("\n" + tail if tail else "")
    else:
        text = text.rstrip() + "\n\n" + block
    doc.write_text(text)


if __name__ == "__main__":
    main()
