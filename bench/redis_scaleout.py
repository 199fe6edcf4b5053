"""Werk on Redis against Werk on SQLite and the peers, in one run; writes the Redis section
of docs/benchmarks.md.

Usage (from the repository root, after ``make install`` and the peers' venv, see
bench/run_all.py)::

    .venv/bin/python bench/redis_scaleout.py [--quick]

It starts a redis-server of its own on a free port (no persistence: ``--save ""
--appendonly no``), so that Redis' own command and CPU counters hold Werk's traffic alone,
and stops it at the end. Every figure is a median of 3 rounds (1 with ``--quick``), and
every system runs in the same run, so the ratios compare like with like.
"""

from __future__ import annotations

import json
import os
import socket
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
START, END = "<!-- redis-scaleout:start -->", "<!-- redis-scaleout:end -->"
SCENARIOS = ("drain_raw", "drain", "drain_async", "costs", "push_single", "push_producers")


def start_redis() -> tuple[subprocess.Popen[bytes], int]:
    """Start a private redis-server without persistence; return it and its port."""
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


def main() -> None:
    quick = "--quick" in sys.argv
    rounds = 1 if quick else 3
    n = {"drain_raw": 20_000, "push_single": 10_000, "push_producers": 20_000}
    big = 5_000 if quick else 50_000
    redis_proc, port = start_redis()
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
    try:
        for scenario in SCENARIOS:
            size = n.get(scenario, big) // (5 if quick else 1)
            for key, storage in (("sqlite", "sqlite"), ("redis", url)):
                r[f"{key}.{scenario}"] = werk_bench(scenario, storage, size, rounds)
                print(key, scenario, r[f"{key}.{scenario}"], flush=True)
        r["redis.drain_two_servers"] = werk_bench("drain_two_servers", url, big, rounds)
        print("redis drain_two_servers", r["redis.drain_two_servers"], flush=True)
        for system in PEERS:
            r[f"peer.{system}"] = peer_bench(system, big, rounds)
            print(system, r[f"peer.{system}"], flush=True)
    finally:
        redis_proc.terminate()
        redis_proc.wait(10)
    RESULTS.write_text(json.dumps(r, indent=2))
    from redis_report import render

    SECTION.write_text(render(r))
    splice(ROOT / "docs" / "benchmarks.md", SECTION.read_text())
    print(f"wrote {SECTION.relative_to(ROOT)} and docs/benchmarks.md", flush=True)


def splice(doc: Path, section: str) -> None:
    """Put ``section`` between the markers of ``doc`` (appended with them if absent)."""
    text = doc.read_text()
    block = f"{START}\n{section.rstrip()}\n{END}\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1].lstrip("\n")
    else:
        text = text.rstrip() + "\n\n" + block
    doc.write_text(text)


if __name__ == "__main__":
    main()
