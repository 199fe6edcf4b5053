"""The worker before and after issue 14, in one run: drain rate and worker CPU per job.

"Before" is this checkout's tree (``git archive HEAD``) with ``src/werk/client/`` and
``src/werk/cli/worker.py`` taken from ``--before`` (default ``afcf964``, the last commit
before issue 14's worker), built into a temporary directory; "after" is this checkout's
``src``. One ``werk server`` (SQLite, from this checkout) serves every pass, so only the
worker differs. Each pass queues N no-op jobs, starts the ``werk worker`` processes of
``werk bench drain`` (2 processes, concurrency 50) with ``PYTHONPATH`` at one tree, and
measures from the first job processed to the last: jobs/s, and the workers' CPU time (user +
system, from ``/proc``) per job, the figure a busy machine disturbs least. Passes alternate
before/after, after/before, ...; medians and after/before ratios are printed at the end.

``--callgrind`` counts instructions instead, which no other load on the machine changes: one
worker process per version runs under ``valgrind --tool=callgrind`` for a drain of 500 and
one of 2,500 jobs, and the difference over 2,000 jobs is the worker's instructions per job
(imports and start-up cancel out). About two minutes per job type and version::

    .venv/bin/python bench/worker_before_after.py                 # noop and anoop, 6 passes
    .venv/bin/python bench/worker_before_after.py -n 20000 --passes 2 --jobs anoop
    .venv/bin/python bench/worker_before_after.py --callgrind     # instructions per job
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from werk.benchmarks.harness import BenchServer, jobs, start_workers, stop_workers
from werk.benchmarks.scenarios import WORKER_CONCURRENCY
from werk.client import Client

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
BEFORE_PATHS = ("src/werk/client", "src/werk/cli/worker.py")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, from ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _extract(ref: str, paths: tuple[str, ...], into: Path) -> None:
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, *paths], cwd=ROOT, check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


def build_before(ref: str, into: Path) -> Path:
    """Write HEAD's ``src`` with the client paths of ``ref`` into ``into``; return its src."""
    _extract("HEAD", ("src",), into)
    shutil.rmtree(into / "src/werk/client")
    _extract(ref, BEFORE_PATHS, into)
    return into / "src"


def processed(client: Client) -> int:
    return int(client.info()["faktory"]["total_processed"])


def wait_for(client: Client, target: int, timeout: float = 600) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if processed(client) >= target:
            return time.monotonic()
        time.sleep(0.01)
    raise TimeoutError(f"fewer than {target} jobs processed in {timeout} s")


Pass = tuple[float, float, float]
"""jobs/s, the workers' CPU us per job, the server's CPU us per job."""


def one_pass(url: str, server_pid: int, src: Path, jobtype: str, n: int, processes: int) -> Pass:
    """Drain ``n`` jobs with workers from ``src``; return its :data:`Pass` figures."""
    with Client(url) as client:
        for start in range(0, n, 1000):
            client.push_bulk(jobs(min(1000, n - start), jobtype=jobtype))
        base = processed(client)
        env = {"PYTHONPATH": str(src)}
        workers = start_workers(url, processes, WORKER_CONCURRENCY, env=env)
        try:
            first_at = wait_for(client, base + 1)
            first = processed(client) - base
            cpu_start = sum(cpu_seconds(w.pid) for w in workers)
            server_start = cpu_seconds(server_pid)
            last_at = wait_for(client, base + n)
            cpu_used = sum(cpu_seconds(w.pid) for w in workers) - cpu_start
            server_used = cpu_seconds(server_pid) - server_start
        finally:
            stop_workers(workers)
    done = n - first
    return done / (last_at - first_at), cpu_used / done * 1e6, server_used / done * 1e6


def _instructions(path: Path) -> int:
    out = subprocess.run(
        ["callgrind_annotate", "--threshold=100", str(path)], capture_output=True, text=True
    ).stdout
    match = re.search(r"([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", out) or re.search(
        r"([\d,]+)\s+PROGRAM TOTALS", out
    )
    if match is None:
        raise RuntimeError(f"no totals in callgrind_annotate's output for {path}")
    return int(match.group(1).replace(",", ""))


def counted_drain(url: str, src: Path, jobtype: str, n: int, out: Path) -> int:
    """Drain ``n`` jobs with one worker from ``src`` under callgrind; return its instructions."""
    with Client(url) as client:
        for start in range(0, n, 1000):
            client.push_bulk(jobs(min(1000, n - start), jobtype=jobtype))
        target = processed(client) + n
        args = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable]
        args += ["-m", "werk", "worker", "werk.benchmarks.jobs:worker", "-c"]
        args += [str(WORKER_CONCURRENCY), "--url", url, "-l", "warning", "-q", "bench"]
        env = {**os.environ, "PYTHONPATH": str(src)}
        worker = subprocess.Popen(args, env=env, stderr=subprocess.DEVNULL)
        try:
            wait_for(client, target, timeout=1800)
        finally:
            stop_workers([worker])
    return _instructions(out)


def callgrind(trees: dict[str, Path], job_types: list[str], tmp: Path) -> None:
    """Print each version's worker instructions per job (drains of 500 and 2,500 jobs)."""
    small, big = 500, 2500
    per_job: dict[tuple[str, str], float] = {}
    with BenchServer("sqlite") as server:
        for jobtype in job_types:
            for version, src in trees.items():
                counts = [
                    counted_drain(server.url, src, jobtype, n, tmp / f"cg-{version}-{n}.out")
                    for n in (small, big)
                ]
                per_job[(jobtype, version)] = (counts[1] - counts[0]) / (big - small)
                print(
                    f"{jobtype:>5} {version:>6}: {per_job[(jobtype, version)]:,.0f}"
                    " worker instructions per job",
                    flush=True,
                )
    print("\n| job | before, instructions/job | after | ratio |\n|---|---|---|---|")
    for jobtype in job_types:
        before, after = per_job[(jobtype, "before")], per_job[(jobtype, "after")]
        print(f"| {jobtype} | {before:,.0f} | {after:,.0f} | {after / before:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=50_000, help="jobs per pass (default 50,000)")
    parser.add_argument("--passes", type=int, default=6, help="passes per version (default 6)")
    parser.add_argument("--jobs", default="noop,anoop", help="job types: noop (def), anoop")
    parser.add_argument("--processes", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--before", default="afcf964", help="commit of the before client")
    parser.add_argument("--callgrind", action="store_true", help="count instructions instead")
    args = parser.parse_args()
    results: dict[tuple[str, str], list[Pass]] = {}
    with tempfile.TemporaryDirectory(prefix="werk-before-") as tmp:
        trees = {"before": build_before(args.before, Path(tmp)), "after": ROOT / "src"}
        if args.callgrind:
            callgrind(trees, args.jobs.split(","), Path(tmp))
            return
        with BenchServer("sqlite") as server:
            assert server.proc is not None
            for number in range(args.passes):
                order = ["before", "after"] if number % 2 == 0 else ["after", "before"]
                for jobtype in args.jobs.split(","):
                    for version in order:
                        figures = one_pass(
                            server.url,
                            server.proc.pid,
                            trees[version],
                            jobtype,
                            args.n,
                            args.processes,
                        )
                        results.setdefault((jobtype, version), []).append(figures)
                        rate, cpu, served = figures
                        print(
                            f"pass {number + 1} {jobtype:>5} {version:>6}: {rate:8.0f} jobs/s"
                            f" {cpu:6.1f} worker CPU us/job {served:6.1f} server CPU us/job",
                            flush=True,
                        )
    report(results, args)


def report(results: dict[tuple[str, str], list[Pass]], args: object, what: str = "") -> None:
    """Print the medians of each job type's passes, before and after, as a Markdown table;
    ``what`` names the versions compared in the heading."""
    passes, n = getattr(args, "passes", "?"), getattr(args, "n", "?")
    print(f"\nmedians of {passes} passes, {n} jobs{what}:")
    print(
        "| job | before jobs/s | after jobs/s | ratio | worker CPU us/job, before | after |"
        " ratio | server CPU us/job, before | after | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for jobtype in dict.fromkeys(job for job, _ in results):
        before, after = results[(jobtype, "before")], results[(jobtype, "after")]
        cells = [f"| {jobtype} "]
        for index, fmt in ((0, ",.0f"), (1, ".1f"), (2, ".1f")):
            b = statistics.median(p[index] for p in before)
            a = statistics.median(p[index] for p in after)
            cells.append(f"| {b:{fmt}} | {a:{fmt}} | {a / b:.2f}x ")
        print("".join(cells) + "|")


if __name__ == "__main__":
    main()
