"""Werk on Redis against Werk on SQLite and the peers, in one run; writes the Redis section
of docs/benchmarks.md.

Usage (from the repository root, after ``make install`` and the peers' venv, see
bench/run_all.py)::

    .venv/bin/python bench/redis_scaleout.py [--quick] [--no-peers] [--port N] [--render]
    .venv/bin/python bench/redis_scaleout.py --only-unix   # the Unix socket rows, 3 minutes

It starts a redis-server of its own (no persistence: ``--save "" --appendonly no``) on a
free port, or on ``--port``, so that Redis' own command and CPU counters hold Werk's
traffic alone, and stops it at the end. Every figure is a median of 3 rounds (1 with
``--quick``, which also runs fewer jobs), and every system runs in the same run,
so the ratios compare like with like. It prints the issue's goals with the measured
figures at the end. ``--no-peers`` skips Huey, Dramatiq and Taskiq (an A/B of Werk alone,
a few minutes with ``--quick``): the Huey ratio then reads "not run", and the run goes to
bench/results-redis-werk.json only, leaving docs/benchmarks.md alone.

The Redis also listens on a Unix socket, and the one-producer and 16-producer PUSH rows are
measured a second time with Werk connected through it (``unix://``), as Faktory talks to the
Redis it runs beside it. ``--only-unix`` measures just those rows over TCP and over the
socket, in alternating rounds, and prints them (bench/results-redis-unix.json).
"""

from __future__ import annotations

import argparse
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
RESULTS_UNIX = ROOT / "bench" / "results-redis-unix.json"
UNIX_SCENARIOS = ("push_single", "push_producers")
SIZES = {"drain_raw": 20_000, "push_single": 10_000, "push_producers": 20_000, "push_path": 5_000}
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


def start_redis(port: int = 0) -> tuple[subprocess.Popen[bytes], int, str]:
    """Start a private redis-server without persistence (on a free port for 0) that also
    listens on a Unix socket; return it, its port and the socket's path."""
    if not port:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
    directory = tempfile.mkdtemp(prefix="werk-bench-redis-")
    unix = os.path.join(directory, "redis.sock")
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--appendonly", "no", "--dir", directory, "--unixsocket", unix]
    args += ["--unixsocketperm", "700"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            if os.path.exists(unix):
                return proc, port, unix
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


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round, fewer jobs")
    parser.add_argument("--no-peers", action="store_true", help="skip Huey, Dramatiq, Taskiq")
    parser.add_argument("--port", type=int, default=0, help="Redis port (default: a free one)")
    parser.add_argument(
        "--render", action="store_true", help="render bench/results-redis.json again, no run"
    )
    parser.add_argument(
        "--only-unix", action="store_true", help="only the PUSH rows, over TCP and Unix socket"
    )
    return parser.parse_args()


class Run:
    """The figures of every round, by ``system.scenario`` key, printed as they come."""

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.runs: dict[str, list[dict[str, Any]]] = {}

    def size(self, scenario: str) -> int:
        """Jobs for a scenario. Quick: a fifth of the small scenarios' jobs, and 20,000 for
        the drains and costs (fewer and the costs per job would be mostly the workers'
        start and connect)."""
        if scenario in SIZES:
            return SIZES[scenario] // (5 if self.quick else 1)
        return 20_000 if self.quick else 50_000

    def bench(self, key: str, scenario: str, storage: str) -> None:
        result = werk_bench(scenario, storage, self.size(scenario), 1)
        self.runs.setdefault(f"{key}.{scenario}", []).append(result)
        print(f"{key}.{scenario}", result, flush=True)

    def peer(self, system: str) -> None:
        result = peer_bench(system, self.size("drain"), 1)
        self.runs.setdefault(f"peer.{system}", []).append(result)
        print(f"peer.{system}", result, flush=True)


def full_round(run: Run, url: str, unix_url: str, peers: tuple[str, ...]) -> None:
    """Every system in turn: the machine's load drifts, and each round then puts every
    system under the same drift."""
    for scenario in SCENARIOS:
        run.bench("sqlite", scenario, "sqlite")
        run.bench("redis", scenario, url)
        if scenario in UNIX_SCENARIOS:
            run.bench("redis_unix", scenario, unix_url)
    run.bench("redis", "drain_two_servers", url)
    for system in peers:
        run.peer(system)


def unix_round(run: Run, number: int, url: str, unix_url: str) -> None:
    """The PUSH rows over TCP and over the Unix socket, which goes first alternating."""
    pairs = [("redis", url), ("redis_unix", unix_url)]
    for scenario in UNIX_SCENARIOS:
        for key, storage in pairs if number % 2 == 0 else pairs[::-1]:
            run.bench(key, scenario, storage)


def main() -> None:
    args = parse_args()
    if args.render:  # again from bench/results-redis.json, without running
        write(json.loads(RESULTS.read_text()))
        return
    peers = () if args.no_peers or args.only_unix else PEERS
    redis_proc, port, unix = start_redis(args.port)
    url = f"redis://127.0.0.1:{port}/3"
    unix_url = f"unix://{unix}?db=5"
    os.environ["BENCH_REDIS_URL"] = f"redis://127.0.0.1:{port}/4"
    r: dict[str, Any] = {
        "machine": machine(),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load": os.getloadavg()[0],
        "redis": subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
        .stdout.split()[2]
        .removeprefix("v="),
    }
    run = Run(args.quick)
    try:
        for number in range(1 if args.quick else 3):
            if args.only_unix:
                unix_round(run, number, url, unix_url)
            else:
                full_round(run, url, unix_url, peers)
    finally:
        redis_proc.terminate()
        redis_proc.wait(10)
    r["load_end"] = os.getloadavg()[0]
    for key, results in run.runs.items():
        r[key] = medians(results)
    if args.only_unix:
        RESULTS_UNIX.write_text(json.dumps(r, indent=2))
        print(unix_summary(r))
        return
    if not peers:
        RESULTS_WERK.write_text(json.dumps(r, indent=2))
        print(f"wrote {RESULTS_WERK.relative_to(ROOT)} (docs/benchmarks.md left alone)")
    else:
        RESULTS.write_text(json.dumps(r, indent=2))
        write(r)
    from redis_report import summary

    print(summary(r))


def unix_summary(r: dict[str, Any]) -> str:
    """The PUSH rows over TCP and over the Unix socket, as plain text."""
    lines = []
    for scenario in UNIX_SCENARIOS:
        tcp = r[f"redis.{scenario}"]["jobs_per_s"]
        sock = r[f"redis_unix.{scenario}"]["jobs_per_s"]
        lines.append(
            f"{scenario}: TCP {tcp:,.0f} jobs/s, Unix socket {sock:,.0f} jobs/s ({sock / tcp:.2f}x)"
        )
    return "\n".join(lines)


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
