"""The server's instructions per command, before and after, counted by callgrind.

Instruction counts do not change with other load on the machine, so this A/B holds on a
busy one where CPU seconds and rates do not. Each version's ``werk server`` (SQLite,
``fsync``) runs under ``valgrind --tool=callgrind``; for each phase the counters are zeroed
(``callgrind_control -z``), the phase runs, and they are dumped (``-d``): the whole
process's instructions (event loop, writer thread, start-up excluded) divided by the
phase's jobs. Phases:

- ``push``: one producer's sequential PUSH (raw protocol, each waiting for ``+OK``);
- ``push_16``: 16 producers' PUSHes, each waiting for its ``+OK`` (4 n in all);
- ``fetch_ack``: one raw connection's FETCH then ACK, one job at a time;
- ``drain``: two ``werk worker`` processes (concurrency 50) draining ``async def`` no-op
  jobs queued before the phase (the worker pipelines ACK and FETCH).

"Before" is ``src/`` of ``--before`` put first on the server's ``PYTHONPATH``; "after" is
this checkout. About four minutes per version::

    .venv/bin/python bench/server_instructions.py --before 77a3b8e [-n 2000] [--storage URL]
        [--durability os]
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from push_path import checkout_src

from werk.benchmarks import raw
from werk.benchmarks.harness import BenchServer, jobs, start_workers, stop_workers
from werk.client import Client

ROOT = Path(__file__).resolve().parent.parent
TOTALS = re.compile(r"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


class Counted:
    """A server under callgrind whose counters are zeroed and dumped around each phase."""

    def __init__(self, server: BenchServer, out: Path) -> None:
        self.server = server
        self.out = out
        self.dumps = 0

    def _control(self, *args: str) -> None:
        assert self.server.proc is not None
        pid = str(self.server.proc.pid)
        subprocess.run(["callgrind_control", *args, pid], check=True, capture_output=True)

    def measure(self, phase: Callable[[], None]) -> int:
        """Run ``phase``; return the instructions the server spent on it."""
        self._control("-z")
        phase()
        self._control("-d")
        self.dumps += 1
        assert self.server.proc is not None
        pattern = f"{self.out}.{self.server.proc.pid}.{self.dumps}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for name in glob.glob(pattern + "*"):
                match = TOTALS.search(Path(name).read_text(errors="replace"))
                if match:
                    return int(match.group(1))
            time.sleep(0.2)
        raise RuntimeError(f"no callgrind dump {pattern}")


def drain(server: BenchServer, n: int) -> Callable[[], None]:
    """Queue ``n`` async no-op jobs now; the returned phase drains them with two workers."""
    with Client(server.url) as client:
        for start in range(0, n, 1000):
            client.push_bulk(jobs(min(1000, n - start), jobtype="anoop"))

    def phase() -> None:
        workers = start_workers(server.url, 2, 50)
        try:
            with Client(server.url) as client:
                while client.info()["faktory"]["queues"].get("bench", 0):
                    time.sleep(0.5)
        finally:
            stop_workers(workers)

    return phase


def run(pythonpath: str, n: int, storage: str, durability: str = "fsync") -> dict[str, float]:
    """Instructions per job of each phase for the server importing from ``pythonpath``."""
    out = Path(tempfile.mkdtemp(prefix="werk-cg-")) / "cg"
    wrapper = ("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", "-q")
    figures: dict[str, float] = {}
    with BenchServer(
        storage, durability=durability, wrapper=wrapper, pythonpath=pythonpath
    ) as server:
        counted = Counted(server, out)
        push = raw.push_lines(n)
        figures["push"] = counted.measure(lambda: raw.push_sequential(server.port, push)) / n
        many = raw.push_lines(4 * n)
        figures["push_16"] = counted.measure(lambda: raw.push_concurrent(server.port, many, 16)) / (
            4 * n
        )
        figures["fetch_ack"] = counted.measure(lambda: raw.fetch_ack(server.port, n)) / n
        figures["drain"] = counted.measure(drain(server, n)) / n
    shutil.rmtree(out.parent, ignore_errors=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="77a3b8e", help="commit of the before server")
    parser.add_argument("-n", type=int, default=2000, help="jobs per phase (default 2,000)")
    parser.add_argument("--storage", default="sqlite", help="sqlite (default) or a Redis URL")
    parser.add_argument(
        "--durability", default="fsync", choices=("fsync", "os"), help="the SQLite store's mode"
    )
    args = parser.parse_args()
    versions = {"before": str(checkout_src(args.before)), "after": str(ROOT / "src")}
    results = {
        name: run(path, args.n, args.storage, args.durability) for name, path in versions.items()
    }
    print(
        f"server instructions per job, {args.storage} ({args.durability}), n={args.n},"
        f" before={args.before}"
    )
    print(f"{'phase':<10} {'before':>12} {'after':>12} {'after/before':>13}")
    for phase in results["before"]:
        before, after = results["before"][phase], results["after"][phase]
        print(f"{phase:<10} {before:>12,.0f} {after:>12,.0f} {after / before:>12.2f}x")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
