"""Drain benchmark driver for the peer job queues: Dramatiq, Huey and Taskiq on Redis.

Usage: bench/.venv-peers/bin/python bench/peers/drive.py SYSTEM N [ROUNDS]

For each round: flush the benchmark's Redis database (DB 4, used by nothing else, or
``$BENCH_REDIS_URL``), enqueue N no-op tasks, start the system's worker with two
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


def enqueue(system: str, n: int) -> None:
    """Enqueue ``n`` no-op tasks with the system's own producer API."""
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    code = f"import tasks_{system} as t; t.enqueue({n})"
    subprocess.run([PY, "-c", code], env=env, check=True, cwd=HERE)


def one_round(system: str, n: int) -> float:
    redis.Redis.from_url(REDIS_URL).flushdb()
    enqueue(system, n)
    counts = Path(tempfile.mkdtemp())
    env = {**os.environ, "PYTHONPATH": str(HERE), "BENCH_COUNT_DIR": str(counts)}
    proc = subprocess.Popen(
        WORKERS[system], env=env, cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
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
        raise TimeoutError(f"{system} did not drain {n} tasks")
    finally:
        proc.terminate()
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
            }
        )
    )


if __name__ == "__main__":
    main()
