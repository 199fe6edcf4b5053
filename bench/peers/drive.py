"""Drain benchmark driver for the peer job queues: Dramatiq, Huey and Taskiq on Redis,
Procrastinate and PGQueuer on PostgreSQL.

Usage: bench/.venv-peers/bin/python bench/peers/drive.py SYSTEM N [ROUNDS]

For each round: start from empty storage (Redis: flush the benchmark's database, DB 4, used
by nothing else, or ``$BENCH_REDIS_URL``; PostgreSQL: a scratch database of its own on
``$BENCH_PG_ADMIN``, created with the system's own schema and dropped after), enqueue N
no-op tasks with the system's own producer API, start the system's worker with two
processes, and measure jobs/s between the first and the last finished task. Prints one
JSON line with the median.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from counting import total  # noqa: E402

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/4")
PY = sys.executable
BIN = Path(sys.executable).parent

WORKERS = {
    "dramatiq": [str(BIN / "dramatiq"), "tasks_dramatiq", "--processes", "2", "--threads", "8"],
    "huey": [str(BIN / "huey_consumer"), "tasks_huey.huey", "-w", "2", "-k", "process", "-q"],
    "taskiq": [str(BIN / "taskiq"), "worker", "tasks_taskiq:broker", "--workers", "2"],
}
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
PUSH_RATES: list[float] = []
"""Jobs/s of each PostgreSQL round's enqueue step (the system's batch API, 1,000 a call)."""
PGQ = "tasks_pgqueuer:main"
PG_WORKERS = {  # one process each; two are started
    "procrastinate": [
        *[str(BIN / "procrastinate"), "--app=tasks_procrastinate.app", "worker"],
        *["--concurrency", "8"],
    ],
    # pgqueuer.run is what `pgq run` calls (its CLI's logging setup fails in 1.6.0)
    "pgqueuer": [PY, "-c", f"import asyncio, pgqueuer; asyncio.run(pgqueuer.run('{PGQ}'))"],
}
PG_SCHEMA = {
    "procrastinate": [str(BIN / "procrastinate"), "--app=tasks_procrastinate.app", "schema"],
    "pgqueuer": [str(BIN / "pgq"), "install"],
}


def enqueue(system: str, n: int, extra: dict[str, str] | None = None) -> None:
    """Enqueue ``n`` no-op tasks with the system's own producer API."""
    env = {**os.environ, "PYTHONPATH": str(HERE), **(extra or {})}
    code = f"import tasks_{system} as t; t.enqueue({n})"
    subprocess.run([PY, "-c", code], env=env, check=True, cwd=HERE)


def one_round(system: str, n: int) -> float:
    if system in PG_WORKERS:
        return pg_round(system, n)
    redis.Redis.from_url(REDIS_URL).flushdb()
    enqueue(system, n)
    return measure([WORKERS[system]], n, {})


def pg_round(system: str, n: int) -> float:
    import psycopg

    name = f"werkbench_{system}_{os.getpid()}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    extra = {"BENCH_PG_URL": url, "PGDSN": url}
    try:
        env = {**os.environ, "PYTHONPATH": str(HERE), **extra}
        subprocess.run(PG_SCHEMA[system], env=env, cwd=HERE, check=True, capture_output=True)
        started = time.monotonic()
        enqueue(system, n, extra)
        PUSH_RATES.append(n / (time.monotonic() - started))
        return measure([PG_WORKERS[system]] * 2, n, extra)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def measure(commands: list[list[str]], n: int, extra: dict[str, str]) -> float:
    """Start the worker processes and time them from the first to the n-th finished task."""
    counts = Path(tempfile.mkdtemp())
    env = {**os.environ, "PYTHONPATH": str(HERE), "BENCH_COUNT_DIR": str(counts), **extra}
    procs = [
        subprocess.Popen(
            command, env=env, cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for command in commands
    ]
    try:
        first_at = first = None
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            done = total(counts)
            now = time.monotonic()
            if first_at is None and done > 0:
                first_at, first = now, done
            if done >= n:
                assert first_at is not None and first is not None
                return (n - first) / (now - first_at)
            time.sleep(0.01)
        raise TimeoutError(f"{commands[0][0]} did not drain {n} tasks")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> None:
    system, n = sys.argv[1], int(sys.argv[2])
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    rates = [one_round(system, n) for _ in range(rounds)]
    print(
        json.dumps(
            {
                "scenario": "drain",
                "system": system,
                "n": n,
                "rounds": rounds,
                "jobs_per_s": statistics.median(rates),
                "all": rates,
                **({"push_jobs_per_s": statistics.median(PUSH_RATES)} if PUSH_RATES else {}),
            }
        )
    )


if __name__ == "__main__":
    main()
