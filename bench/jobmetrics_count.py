"""Time what the job metrics middleware adds to each ACK: counting it in memory, plus the
store write every 5 s (on the embedded SQLite store in a temporary directory).

    .venv/bin/python bench/jobmetrics_count.py [--acks 200000] [--repeat 5]

Prints the median microseconds per counted ACK over ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

from werk.manager.jobmetrics import JobMetrics
from werk.storage import open_store
from werk.storage.base import Entry, Reservation


async def run(acks: int) -> float:
    """Count ``acks`` ACKs of three job types; return microseconds per ACK."""
    with tempfile.TemporaryDirectory() as directory:
        store = open_store(directory)
        await store.open()
        metrics = JobMetrics(store)
        held = [
            Reservation(Entry(f"j{i}", "q", "ABC"[i % 3], 5, 1800, b"{}"), 0, 0, 0, "w")
            for i in range(1000)
        ]
        start = time.perf_counter()
        for i in range(acks):
            now = time.time()
            await metrics.acked(held[i % 1000], now)
        elapsed = time.perf_counter() - start
        await store.close()
    return elapsed / acks * 1e6


def main() -> None:
    """Run the benchmark and print the median."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--acks", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    times = [asyncio.run(run(args.acks)) for _ in range(args.repeat)]
    print(f"median {statistics.median(times):.2f} us per ACK (runs: {times})")


if __name__ == "__main__":
    main()
