"""The benchmark scenarios. Each returns a dict of figures for one round.

- ``push_bulk`` / ``push_single``: one producer pushes N no-op jobs (PUSHB of 1,000, or one
  PUSH at a time); jobs/s.
- ``drain``: N queued jobs drained by worker processes running Werk's worker; jobs/s
  measured between the first and the last processed job, from the server's counters.
- ``latency``: an idle worker blocked in FETCH; time from PUSH to job start, p50/p99.
- ``scheduled``: jobs due 1 s ahead; how late each starts, p50/p99.
- ``depth``: cost per push and per fetch+ack with a shallow and a deep queue, and the ratio.
- ``memory``: the server's RSS with N jobs queued.
- ``push_path`` / ``push_clients``: the single-PUSH and push-to-FETCH path, per durability
  mode, against the disk's raw fsync rate; and Python clients side by side
  (:mod:`werk.benchmarks.pushpath`).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from werk.benchmarks import costs
from werk.benchmarks.harness import (
    BenchServer,
    jobs,
    median,
    percentile,
    start_workers,
    stop_workers,
)
from werk.benchmarks.pushpath import push_clients, push_path
from werk.client import Client

Scenario = Callable[[str, int], dict[str, Any]]


def _fill(client: Client, n: int, batch: int = 1000, **fields: Any) -> None:
    for start in range(0, n, batch):
        client.push_bulk(jobs(min(batch, n - start), **fields))


def push_bulk(storage: str, n: int) -> dict[str, Any]:
    """PUSHB batches of 1,000 from one producer."""
    with BenchServer(storage) as server, Client(server.url) as client:
        started = time.perf_counter()
        _fill(client, n)
        elapsed = time.perf_counter() - started
    return {"jobs_per_s": n / elapsed}


def push_single(storage: str, n: int) -> dict[str, Any]:
    """One PUSH at a time from one producer, each waiting for its +OK."""
    with BenchServer(storage) as server, Client(server.url) as client:
        payloads = jobs(n)
        started = time.perf_counter()
        for job in payloads:
            client.push(job)
        elapsed = time.perf_counter() - started
    return {"jobs_per_s": n / elapsed}


WORKER_CONCURRENCY = 50
"""Jobs each benchmark worker process runs at once (its connections to the server)."""


def drain(
    storage: str,
    n: int,
    processes: int = 2,
    concurrency: int = WORKER_CONCURRENCY,
    jobtype: str = "noop",
) -> dict[str, Any]:
    """N queued no-op jobs (a plain function) drained by ``processes`` worker processes."""
    with BenchServer(storage) as server, Client(server.url) as client:
        _fill(client, n, jobtype=jobtype)
        workers = start_workers(server.url, processes, concurrency)
        try:
            first_at, first_count = _wait_processed(client, 1)
            last_at, _ = _wait_processed(client, n)
        finally:
            stop_workers(workers)
    return {"jobs_per_s": (n - first_count) / (last_at - first_at)}


def drain_async(storage: str, n: int) -> dict[str, Any]:
    """Like ``drain``, with the no-op written as ``async def`` (no thread hop per job)."""
    return drain(storage, n, jobtype="anoop")


def drain_two_servers(storage: str, n: int) -> dict[str, Any]:
    """Two servers sharing one Redis or PostgreSQL, one worker process on each, draining N
    jobs."""
    if storage == "sqlite":
        raise ValueError(
            "two servers need a shared store: pass --storage redis://... or postgresql://..."
        )
    first = BenchServer(storage).start()
    second = BenchServer(storage, prefix=first.prefix).start()
    try:
        with Client(first.url) as client:
            _fill(client, n)
            workers = start_workers(first.url, 1, WORKER_CONCURRENCY)
            workers += start_workers(second.url, 1, WORKER_CONCURRENCY)
            try:
                first_at, first_count = _wait_processed(client, 1)
                last_at, _ = _wait_processed(client, n)
            finally:
                stop_workers(workers)
    finally:
        second.stop(keep_data=True)
        first.stop()
    return {"jobs_per_s": (n - first_count) / (last_at - first_at)}


def _wait_processed(client: Client, target: int, timeout: float = 600) -> tuple[float, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = int(client.info()["faktory"]["total_processed"])
        if done >= target:
            return time.monotonic(), done
        time.sleep(0.02)
    raise TimeoutError(f"fewer than {target} jobs processed in {timeout} s")


def _delays(path: Path, count: int, timeout: float = 120) -> list[float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_text().split() if path.exists() else []
        if len(lines) >= count:
            return [float(x) for x in lines[:count]]
        time.sleep(0.05)
    raise TimeoutError(f"only some of {count} jobs ran")


def latency(storage: str, n: int) -> dict[str, Any]:
    """Push-to-start latency with one idle worker blocked in FETCH, one job at a time."""
    out = Path(tempfile.mkdtemp()) / "delays"
    with BenchServer(storage) as server, Client(server.url) as client:
        workers = start_workers(server.url, 1, 1, env={"WERK_BENCH_OUT": str(out)})
        try:
            client.push(
                {"jid": "warmup-0000", "jobtype": "record", "args": [time.time()], "queue": "bench"}
            )
            _delays(out, 1)
            out.write_text("")
            for i in range(n):
                before = _count_lines(out)
                client.push(
                    {
                        "jid": f"lat-{i:010d}",
                        "jobtype": "record",
                        "args": [time.time()],
                        "queue": "bench",
                    }
                )
                _wait_lines(out, before + 1)
            delays = _delays(out, n)
        finally:
            stop_workers(workers)
    ms = [d * 1000 for d in delays]
    return {"p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99)}


def _count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return handle.read().count(b"\n")


def _wait_lines(path: Path, count: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while _count_lines(path) < count:
        if time.monotonic() > deadline:
            raise TimeoutError("a job did not start")
        time.sleep(0.0002)


def scheduled(storage: str, n: int) -> dict[str, Any]:
    """``n`` jobs due 1 s after their push; how late each one starts."""
    out = Path(tempfile.mkdtemp()) / "delays"
    out.write_text("")
    with BenchServer(storage) as server, Client(server.url) as client:
        workers = start_workers(server.url, 2, 10, env={"WERK_BENCH_OUT": str(out)})
        try:
            time.sleep(1.0)
            due = time.time() + 1.0
            at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(due))
            at += f".{int(due % 1 * 1e6):06d}Z"
            payload = jobs(n, at=at)
            for job in payload:
                job["jobtype"], job["args"] = "record", [due]
            client.push_bulk(payload)
            delays = _delays(out, n)
        finally:
            stop_workers(workers)
    ms = [d * 1000 for d in delays]
    return {"p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99)}


def depth(storage: str, n: int, probe: int = 2000) -> dict[str, Any]:
    """Cost per push and per fetch+ack with 1,000 and with ``n`` jobs queued."""
    with BenchServer(storage) as server, Client(server.url) as client:
        _fill(client, 1000)
        shallow = _probe(client, probe)
        _fill(client, n - 1000)
        deep = _probe(client, probe)
        rss = server.rss_mb()
    return {
        "push_us_shallow": shallow[0],
        "push_us_deep": deep[0],
        "fetch_us_shallow": shallow[1],
        "fetch_us_deep": deep[1],
        "push_ratio": deep[0] / shallow[0],
        "fetch_ratio": deep[1] / shallow[1],
        "rss_mb": rss,
    }


def _probe(client: Client, count: int) -> tuple[float, float]:
    payload = jobs(count)
    started = time.perf_counter()
    for job in payload:
        client.push(job)
    push_us = (time.perf_counter() - started) / count * 1e6
    started = time.perf_counter()
    for _ in range(count):
        fetched = client.fetch("bench")
        assert fetched is not None
        client.ack(fetched["jid"])
    fetch_us = (time.perf_counter() - started) / count * 1e6
    return push_us, fetch_us


def memory(storage: str, n: int) -> dict[str, Any]:
    """The server's RSS, idle and with ``n`` jobs queued."""
    with BenchServer(storage) as server, Client(server.url) as client:
        idle = server.rss_mb()
        _fill(client, n)
        time.sleep(1)
        full = server.rss_mb()
    return {"rss_idle_mb": idle, "rss_full_mb": full}


DEFAULT_N: dict[str, int] = {
    "push_bulk": 100_000,
    "push_single": 20_000,
    "drain": 100_000,
    "drain_async": 100_000,
    "drain_two_servers": 100_000,
    "latency": 10_000,
    "scheduled": 1_000,
    "depth": 1_000_000,
    "memory": 1_000_000,
    "push_path": 5_000,
    "push_clients": 5_000,
    "costs": 50_000,
    "drain_raw": 50_000,
    "push_producers": 20_000,
}

SCENARIOS: dict[str, Scenario] = {
    "push_bulk": push_bulk,
    "push_single": push_single,
    "drain": drain,
    "drain_async": drain_async,
    "drain_two_servers": drain_two_servers,
    "latency": latency,
    "scheduled": scheduled,
    "depth": depth,
    "memory": memory,
    "push_path": push_path,
    "push_clients": push_clients,
    "costs": costs.costs,
    "drain_raw": costs.drain_raw,
    "push_producers": costs.push_producers,
}


def run(
    name: str,
    storage: str,
    n: int,
    rounds: int,
    on_round: Callable[[int], None] = lambda _round: None,
) -> dict[str, Any]:
    """Run a scenario ``rounds`` times; return the median of every figure.

    ``on_round`` is called with the 1-based round number before each round (progress).
    """
    results = []
    for number in range(1, rounds + 1):
        on_round(number)
        results.append(SCENARIOS[name](storage, n))
    keys = results[0].keys()
    return {key: median([r[key] for r in results]) for key in keys} | {"rounds": rounds}
