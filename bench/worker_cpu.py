"""Worker CPU per job during a drain, read from /proc: steadier than jobs/s on a busy machine.

Starts a ``werk server`` (SQLite) with the benchmark harness, queues N no-op jobs, starts
the two ``werk worker`` processes of ``werk bench drain``, and once the first job is done
reads the workers' CPU time (user + system) until the last one is. Prints the CPU
microseconds per job and the drain rate. Compare two versions of the worker side by side by
running it under each (``PYTHONPATH=<tree>/src``), alternating, in the same session::

    .venv/bin/python bench/worker_cpu.py noop 50000     # def no-op
    .venv/bin/python bench/worker_cpu.py anoop 50000    # async def no-op
"""

from __future__ import annotations

import os
import sys

from werk.benchmarks.harness import BenchServer, start_workers, stop_workers
from werk.benchmarks.scenarios import WORKER_CONCURRENCY, _fill, _wait_processed
from werk.client import Client

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, from ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def main(jobtype: str, n: int) -> None:
    """Drain ``n`` jobs of ``jobtype`` and print the workers' CPU per job."""
    with BenchServer("sqlite") as server, Client(server.url) as client:
        _fill(client, n, jobtype=jobtype)
        workers = start_workers(server.url, 2, WORKER_CONCURRENCY)
        try:
            first_at, first = _wait_processed(client, 1)
            start = sum(cpu_seconds(w.pid) for w in workers)
            last_at, _ = _wait_processed(client, n)
            used = sum(cpu_seconds(w.pid) for w in workers) - start
        finally:
            stop_workers(workers)
    per_job = used / (n - first) * 1e6
    rate = (n - first) / (last_at - first_at)
    print(f"{jobtype} worker_cpu_us_per_job {per_job:.1f} jobs_per_s {rate:.0f}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 50_000)
