"""Run every benchmark side by side and write docs/benchmarks.md.

Usage (from the repository root, after ``make install``)::

    python3 -m venv bench/.venv-peers
    bench/.venv-peers/bin/pip install -r bench/requirements-peers.txt
    .venv/bin/python bench/run_all.py [--quick]

Werk's scenarios run through ``werk bench`` on the embedded SQLite store (fsync on) and on
the local Redis; the peers (Dramatiq, Huey, Taskiq) drain the same N no-op jobs on the same
Redis with two worker processes each, in the same run. Every figure is a median of
several rounds. ``--quick`` uses small N for a smoke run.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS_PY = ROOT / "bench" / ".venv-peers" / "bin" / "python"
REDIS = "redis://127.0.0.1:6379/3"
PEERS = ("dramatiq", "huey", "taskiq")


def werk_bench(scenario: str, storage: str, n: int | None, rounds: int) -> dict[str, Any]:
    args = [sys.executable, "-m", "werk", "bench", scenario, "--storage", storage]
    args += ["--rounds", str(rounds)] + (["-n", str(n)] if n else [])
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def peer_bench(system: str, n: int, rounds: int) -> dict[str, Any]:
    args = [str(PEERS_PY), str(ROOT / "bench" / "peers" / "drive.py"), system, str(n), str(rounds)]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"
    )


SECTION = re.compile(r"<!-- ([\w-]+):start -->.*?<!-- \1:end -->", re.DOTALL)


def kept_sections(old: str) -> str:
    """The sections other scripts write (``<!-- name:start -->`` to ``<!-- name:end -->``,
    e.g. bench/push_path.py's), kept across runs of this one."""
    return "".join("\n" + match.group(0) + "\n" for match in SECTION.finditer(old))


def main() -> None:
    quick = "--quick" in sys.argv
    rounds = 1 if quick else 3
    n_drain = 5_000 if quick else 100_000
    results: dict[str, Any] = {
        "machine": machine(),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    for storage in ("sqlite", REDIS):
        key = "sqlite" if storage == "sqlite" else "redis"
        for scenario in (
            "push_bulk",
            "push_single",
            "drain",
            "drain_async",
            "latency",
            "scheduled",
        ):
            n = {"push_bulk": n_drain, "drain": n_drain, "drain_async": n_drain}.get(scenario)
            if quick:
                n = n or 1_000
            results[f"{key}.{scenario}"] = werk_bench(scenario, storage, n, rounds)
            print(key, scenario, results[f"{key}.{scenario}"], flush=True)
    results["redis.drain_two_servers"] = werk_bench("drain_two_servers", REDIS, n_drain, rounds)
    print("redis drain_two_servers", results["redis.drain_two_servers"], flush=True)
    for scenario in ("depth", "memory"):
        results[f"sqlite.{scenario}"] = werk_bench(scenario, "sqlite", 50_000 if quick else None, 1)
        print("sqlite", scenario, results[f"sqlite.{scenario}"], flush=True)
    for system in PEERS:
        results[f"peer.{system}"] = peer_bench(system, n_drain, rounds)
        print(system, results[f"peer.{system}"], flush=True)
    out = ROOT / "bench" / "results.json"
    out.write_text(json.dumps(results, indent=2))
    from report import render

    doc = ROOT / "docs" / "benchmarks.md"
    doc.write_text(render(results) + kept_sections(doc.read_text() if doc.exists() else ""))
    print("wrote docs/benchmarks.md", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
