"""Benchmark: one worker process drains N no-op jobs; werk.client vs ``faktory``, ``pyfaktory``.

The script starts its own ``werk server`` (free port, temporary data directory). For each
round and each library it pushes N jobs, starts one worker process with the given
concurrency, and times the drain from the first job processed to the last (so process
start-up and imports are not counted), polling INFO. It prints medians and the ratio of
each library's time to ours.

    .venv/bin/python bench/worker_drain.py [-n 20000] [-r 3] [-c 10]
"""

from __future__ import annotations

import argparse
import logging
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

LIBRARIES = ("werk-sync", "werk-async", "faktory", "pyfaktory")


def noop(*args: object) -> None:
    """The job: does nothing."""


async def async_noop(*args: object) -> None:
    """The job, as a coroutine: does nothing."""


# -- the worker processes ---------------------------------------------------------------


def run_werk(url: str, queue: str, concurrency: int, use_async: bool) -> None:
    from werk.client import Worker

    worker = Worker(url, queues=[queue], concurrency=concurrency)
    worker.add("noop", async_noop if use_async else noop)
    worker.run()


def run_faktory(url: str, queue: str, concurrency: int) -> None:
    from faktory import Worker as FaktoryWorker  # type: ignore[import-untyped]

    worker = FaktoryWorker(faktory=url, queues=[queue], concurrency=concurrency, use_threads=True)
    worker.register("noop", noop)
    worker.run()


def run_pyfaktory(url: str, queue: str, concurrency: int) -> None:
    from pyfaktory import Client as PyClient  # type: ignore[import-untyped]
    from pyfaktory import Consumer

    with PyClient(faktory_url=url, role="consumer") as client:
        consumer = Consumer(client=client, queues=[queue], concurrency=concurrency)
        consumer.register("noop", noop)
        consumer.run()


def worker_main(library: str, url: str, queue: str, concurrency: int) -> None:
    """Entry point of a worker subprocess."""
    logging.basicConfig(level=logging.WARNING)
    runners: dict[str, Callable[[], None]] = {
        "werk-sync": lambda: run_werk(url, queue, concurrency, use_async=False),
        "werk-async": lambda: run_werk(url, queue, concurrency, use_async=True),
        "faktory": lambda: run_faktory(url, queue, concurrency),
        "pyfaktory": lambda: run_pyfaktory(url, queue, concurrency),
    }
    runners[library]()


# -- the driver ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(data_dir: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = [sys.executable, "-m", "werk", "server", "-b", f"127.0.0.1:{port}", "-w", ":0"]
    proc = subprocess.Popen([*args, "-d", data_dir, "-l", "warn"], stderr=subprocess.DEVNULL)
    url = f"tcp://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("werk server did not start")


def drain(library: str, url: str, jobs: int, concurrency: int) -> float:
    """Push ``jobs`` no-op jobs, run one worker process, return the drain time in seconds.

    Each run uses a queue of its own: a killed worker's FETCH still waiting in the server
    must not take the next run's jobs.
    """
    from werk.client import Client, Job
    from werk.job import new_jid

    queue = f"bench-{library}-{new_jid()[:6]}"

    with Client(url) as client:
        client.flush()
        for start in range(0, jobs, 1000):
            batch = [Job("noop", [i], queue=queue) for i in range(start, min(jobs, start + 1000))]
            assert client.push_bulk(batch) == {}
        base = client.info()["faktory"]["total_processed"]
        cmd = [sys.executable, __file__, "--worker", library, "--url", url, "--queue", queue]
        worker = subprocess.Popen([*cmd, "-c", str(concurrency)], stderr=subprocess.DEVNULL)
        try:
            first = last = 0.0
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                done = client.info()["faktory"]["total_processed"] - base
                now = time.perf_counter()
                if done >= 1 and not first:
                    first = now
                if done >= jobs:
                    last = now
                    break
                time.sleep(0.01)
            if not last:
                raise RuntimeError(f"{library} did not drain the queue")
        finally:
            stop(worker)
    return last - first


def stop(worker: subprocess.Popen[bytes]) -> None:
    """Stop a worker process: SIGTERM (its graceful shutdown), SIGKILL after 15 s."""
    worker.terminate()
    try:
        worker.wait(15)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--jobs", type=int, default=20_000)
    parser.add_argument("-r", "--rounds", type=int, default=3)
    parser.add_argument("-c", "--concurrency", type=int, default=10)
    parser.add_argument("--libraries", default=",".join(LIBRARIES))
    parser.add_argument("--worker", choices=LIBRARIES, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--queue", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args.worker, args.url, args.queue, args.concurrency)
        return 0
    libraries = args.libraries.split(",")
    times: dict[str, list[float]] = {name: [] for name in libraries}
    with tempfile.TemporaryDirectory(prefix="werk-bench-") as tmp:
        server, url = start_server(tmp)
        try:
            for round_ in range(1, args.rounds + 1):
                for name in libraries:
                    seconds = drain(name, url, args.jobs, args.concurrency)
                    times[name].append(seconds)
                    print(
                        f"round {round_} {name:>10}: {seconds:7.2f}s "
                        f"{args.jobs / seconds:8.0f} jobs/s",
                        flush=True,
                    )
        finally:
            server.terminate()
            server.wait(20)
    report(times, args.jobs, args.concurrency)
    return 0


def report(times: dict[str, list[float]], jobs: int, concurrency: int) -> None:
    ours = statistics.median(times["werk-sync"]) if "werk-sync" in times else None
    print(f"\n{jobs} no-op jobs, one worker process, concurrency {concurrency}; medians:")
    print("| library | median drain (s) | jobs/s | time vs werk-sync |\n|---|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        ratio = f"{median / ours:.2f}x" if ours else "-"
        print(f"| {name} | {median:.2f} | {jobs / median:.0f} | {ratio} |")


if __name__ == "__main__":
    sys.exit(main())
