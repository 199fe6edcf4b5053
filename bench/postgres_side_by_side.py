"""Werk on PostgreSQL beside Procrastinate and PGQueuer on the same PostgreSQL, and beside
Werk's SQLite and Redis stores, in one run (docs/benchmarks.md, section PostgreSQL).

Usage (after ``make install`` and the peers' venv, see bench/run_all.py)::

    .venv/bin/python bench/postgres_side_by_side.py [N] [ROUNDS]

Werk: ``werk bench drain push_bulk push_single`` on each store (PostgreSQL: a scratch
database ``werkbench_<pid>`` on 127.0.0.1:5432, a schema per server set) and
``drain_two_servers`` on PostgreSQL. Peers: bench/peers/drive.py, each on a scratch
database of its own with its own schema, its own producer (batches of 1,000) and its own
worker started as two processes. Prints one JSON line per measurement and a Markdown
table of medians.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PEERS_PY = ROOT / "bench" / ".venv-peers" / "bin" / "python"
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/3"


def werk(scenarios: list[str], storage: str, n: int, rounds: int) -> list[dict[str, Any]]:
    args = [sys.executable, "-m", "werk", "bench", *scenarios, "--storage", storage]
    args += ["--rounds", str(rounds), "-n", str(n)]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.strip().splitlines() if line.startswith("{")]


def peer(system: str, n: int, rounds: int) -> dict[str, Any]:
    args = [str(PEERS_PY), str(ROOT / "bench" / "peers" / "drive.py"), system, str(n), str(rounds)]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    name = f"werkbench_{os.getpid()}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    pg_url = ADMIN.rsplit("/", 1)[0] + "/" + name
    rows: dict[str, dict[str, float]] = {}
    try:
        for label, storage in (("SQLite", "sqlite"), ("Redis", REDIS), ("PostgreSQL", pg_url)):
            for line in werk(["drain", "push_bulk", "push_single"], storage, n, rounds):
                print(json.dumps({**line, "storage": label}), flush=True)
                rows.setdefault(f"Werk, {label}", {})[line["scenario"]] = line["jobs_per_s"]
        for line in werk(["drain_two_servers"], pg_url, n, rounds):
            print(json.dumps({**line, "storage": "PostgreSQL"}), flush=True)
            rows["Werk, PostgreSQL, two servers"] = {"drain": line["jobs_per_s"]}
        for system in ("procrastinate", "pgqueuer"):
            result = peer(system, n, rounds)
            print(json.dumps(result), flush=True)
            rows[system] = {"drain": result["jobs_per_s"], "push_bulk": result["push_jobs_per_s"]}
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    print(f"\nN = {n:,}; rounds = {rounds}\n")
    print(
        "| system | drain jobs/s | push jobs/s (batches of 1,000) | push jobs/s (one at a time) |"
    )
    print("|---|---|---|---|")
    for label, got in rows.items():
        cells = [
            f"{got[k]:,.0f}" if k in got else "-" for k in ("drain", "push_bulk", "push_single")
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
