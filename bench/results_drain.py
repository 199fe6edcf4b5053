"""Benchmark: what job results cost. The same jobs pushed and drained with results off
(no ``result_ttl``) and on (``result_ttl``: the server writes a pending record at push and
the outcome with the returned value at ACK), taking turns in one run on one server.

For each round and variant it pushes N jobs (PUSHB of 1,000), starts two ``werk`` worker
processes whose function returns a small dict, and times the drain from the first job
processed to the last (polling INFO). It prints the medians and the on/off ratios.

    .venv/bin/python bench/results_drain.py [-n 20000] [-r 3] [--storage sqlite|redis://...]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import time

from werk.benchmarks.harness import BenchServer

VARIANTS = ("off", "on")
WORKERS = 2


def echo(i: int) -> dict[str, int]:
    """The job: returns a small value (sent with the ACK only when the job asks)."""
    return {"i": i, "square": i * i}


def worker_main(url: str, queue: str, concurrency: int) -> None:
    """Entry point of a worker subprocess."""
    from werk.client import Worker

    logging.basicConfig(level=logging.WARNING)
    worker = Worker(url, queues=[queue], concurrency=concurrency)
    worker.add("echo", echo)
    worker.run()


def run(variant: str, url: str, jobs: int, concurrency: int) -> tuple[float, float]:
    """Push and drain ``jobs`` jobs; return (push seconds, drain seconds)."""
    from werk.client import Client, Job
    from werk.job import new_jid

    queue = f"results-{variant}-{new_jid()[:6]}"
    ttl = 600.0 if variant == "on" else None
    with Client(url) as client:
        base = client.info()["faktory"]["total_processed"]
        started = time.perf_counter()
        for first in range(0, jobs, 1000):
            batch = [
                Job("echo", [i], queue=queue, result_ttl=ttl)
                for i in range(first, min(jobs, first + 1000))
            ]
            assert client.push_bulk(batch) == {}
        pushed = time.perf_counter() - started
        cmd = [sys.executable, __file__, "--worker", "--url", url, "--queue", queue]
        workers = [
            subprocess.Popen([*cmd, "-c", str(concurrency)], stderr=subprocess.DEVNULL)
            for _ in range(WORKERS)
        ]
        try:
            begin = end = 0.0
            deadline = time.monotonic() + 900
            while time.monotonic() < deadline:
                done = client.info()["faktory"]["total_processed"] - base
                now = time.perf_counter()
                if done >= 1 and not begin:
                    begin = now
                if done >= jobs:
                    end = now
                    break
                time.sleep(0.01)
            if not end:
                raise RuntimeError(f"results {variant}: the queue was not drained")
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(30)
        if variant == "on":  # every job's result is there
            assert client.result(f"{batch[-1].jid}", timeout=5) == echo(jobs - 1)
    return pushed, end - begin


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--jobs", type=int, default=20_000)
    parser.add_argument("-r", "--rounds", type=int, default=3)
    parser.add_argument("-c", "--concurrency", type=int, default=10)
    parser.add_argument("--storage", default="sqlite")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--queue", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args.url, args.queue, args.concurrency)
        return 0
    push: dict[str, list[float]] = {name: [] for name in VARIANTS}
    drain: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with BenchServer(storage=args.storage) as server:
        for round_ in range(1, args.rounds + 1):
            order = VARIANTS if round_ % 2 else VARIANTS[::-1]  # take turns going first
            for variant in order:
                pushed, drained = run(variant, server.url, args.jobs, args.concurrency)
                push[variant].append(pushed)
                drain[variant].append(drained)
                print(
                    f"round {round_} results {variant:>3}: push {args.jobs / pushed:7.0f} jobs/s,"
                    f" drain {args.jobs / drained:7.0f} jobs/s",
                    flush=True,
                )
    report(push, drain, args)
    return 0


def report(
    push: dict[str, list[float]], drain: dict[str, list[float]], args: argparse.Namespace
) -> None:
    """Print the medians as a Markdown table, with the on/off ratios."""
    n = args.jobs
    print(
        f"\n{n} jobs, PUSHB of 1,000, {WORKERS} worker processes x {args.concurrency},"
        f" storage {args.storage}, {args.rounds} rounds; medians:"
    )
    print("| results | push jobs/s | drain jobs/s |\n|---|---|---|")
    for name in VARIANTS:
        p, d = statistics.median(push[name]), statistics.median(drain[name])
        print(f"| {name} | {n / p:,.0f} | {n / d:,.0f} |")
    p_ratio = statistics.median(push["off"]) / statistics.median(push["on"])
    d_ratio = statistics.median(drain["off"]) / statistics.median(drain["on"])
    print(f"| on / off | {p_ratio:.2f}x | {d_ratio:.2f}x |")


if __name__ == "__main__":
    sys.exit(main())
