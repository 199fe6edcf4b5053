"""The push-path scenarios: what one web request's PUSH and a job's first start cost.

- ``push_path``: against a fresh server per durability mode (SQLite: ``fsync`` and ``os``;
  Redis: its own), with raw protocol connections (:mod:`werk.benchmarks.raw`): one
  producer's sequential PUSH, 16 producers' PUSH, PUSH-to-FETCH latency with a consumer
  parked in FETCH, the server's CPU per PUSH and per FETCH+ACK, on SQLite how many of the
  16 producers' PUSHes one commit carried and a commit's mean time, and, in the same run,
  the raw write+fsync rate of the data directory's disk (the yardstick for ``fsync`` mode)
  and, right after it, the rate of a bare SQLite commit on that disk.
- ``push_clients``: sequential PUSH from one thread with Werk's ``Client.push``, the
  ``faktory`` and the ``pyfaktory`` clients and the raw connection, on one server.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from werk.benchmarks import raw
from werk.benchmarks.harness import BenchServer, jobs, percentile

PRODUCERS = 16
LATENCY_SAMPLES = 1000


def push_path(storage: str, n: int, modes: tuple[str, ...] = ("fsync", "os")) -> dict[str, Any]:
    """Every push-path figure, per durability mode (``modes``, on SQLite), with the disk's
    raw fsync rate measured right before and right after each one-producer run (the disk
    of a shared machine changes speed from one second to the next)."""
    result: dict[str, Any] = {}
    modes = modes if storage == "sqlite" else ("backend",)
    for mode in modes:
        durability = "fsync" if mode == "backend" else mode
        with BenchServer(storage, durability=durability, web=storage == "sqlite") as server:
            figures = _measure(server, n)
        result |= {f"{mode}.{key}": value for key, value in figures.items()}
        result[f"{mode}.push_1_vs_fsync"] = figures["push_1_per_s"] / figures["fsync_per_s"]
        if "sqlite_commit_per_s" in figures:
            commit_rate = figures["sqlite_commit_per_s"]
            result[f"{mode}.push_1_vs_sqlite_commit"] = figures["push_1_per_s"] / commit_rate
    result["fsync_per_s"] = statistics.mean(result[f"{mode}.fsync_per_s"] for mode in modes)
    return result


def _measure(server: BenchServer, n: int) -> dict[str, float]:
    assert server.proc is not None
    pid = server.proc.pid
    figures: dict[str, float] = {}
    disk = tempfile.gettempdir()  # where BenchServer keeps its data directory
    probe = raw.fsync_rate(disk, seconds=0.5)
    cpu = raw.cpu_seconds(pid)
    elapsed = raw.push_sequential(server.port, raw.push_lines(n))
    figures["push_1_per_s"] = n / elapsed
    figures["push_1_cpu_us"] = (raw.cpu_seconds(pid) - cpu) / n * 1e6
    figures["fsync_per_s"] = (probe + raw.fsync_rate(disk, seconds=0.5)) / 2
    if server.storage == "sqlite":
        figures["sqlite_commit_per_s"] = raw.sqlite_commit_rate(disk, seconds=0.5)
    many = n * 4
    cpu, commits = raw.cpu_seconds(pid), server.commits()
    elapsed = raw.push_concurrent(server.port, raw.push_lines(many), PRODUCERS)
    figures["push_16_per_s"] = many / elapsed
    figures["push_16_cpu_us"] = (raw.cpu_seconds(pid) - cpu) / many * 1e6
    after = server.commits()
    if commits is not None and after is not None and after[0] > commits[0]:
        # Group commit: how many PUSHes each commit carried, and how long one took.
        figures["push_16_per_commit"] = many / (after[0] - commits[0])
        figures["push_16_commit_ms"] = (after[1] - commits[1]) / (after[0] - commits[0]) * 1e3
    cpu = raw.cpu_seconds(pid)
    elapsed = raw.fetch_ack(server.port, n)
    figures["fetch_ack_per_s"] = n / elapsed
    figures["fetch_ack_cpu_us"] = (raw.cpu_seconds(pid) - cpu) / n * 1e6
    samples = min(n, LATENCY_SAMPLES)
    latencies = [s * 1000 for s in raw.push_to_fetch(server.port, samples)]
    figures["push_to_fetch_p50_ms"] = percentile(latencies, 50)
    figures["push_to_fetch_p99_ms"] = percentile(latencies, 99)
    return figures


def push_clients(
    storage: str, n: int, blocks: int = 10, durability: str = "fsync"
) -> dict[str, Any]:
    """Sequential PUSH from one thread with each Python client, on one server.

    The clients take turns, ``n / blocks`` jobs at a time, so that all of them see the same
    moments of a noisy machine; each one's rate is its jobs over its own time.
    """
    per_block = max(1, n // blocks)
    with BenchServer(storage, durability=durability) as server, ExitStack() as stack:
        pushers: dict[str, Pusher] = {}
        for name, opener in OPENERS.items():
            try:
                pushers[name] = opener(server, stack)
            except ImportError:  # a third-party client that is not installed
                continue
        spent = dict.fromkeys(pushers, 0.0)
        for block in range(blocks):
            for name, push in pushers.items():
                payload = jobs(per_block, tag=f"{name}{block}")
                started = time.perf_counter()
                for job in payload:
                    push(job)
                spent[name] += time.perf_counter() - started
    return {f"{name}_per_s": per_block * blocks / seconds for name, seconds in spent.items()}


Pusher = Callable[[dict[str, Any]], object]


def _werk(server: BenchServer, stack: ExitStack) -> Pusher:
    from werk.client import Client

    return stack.enter_context(Client(server.url)).push


def _faktory(server: BenchServer, stack: ExitStack) -> Pusher:
    import faktory

    client = stack.enter_context(faktory.Client(server.url))
    return lambda job: client.queue("noop", args=(), queue="bench", jid=job["jid"])


def _pyfaktory(server: BenchServer, stack: ExitStack) -> Pusher:
    from pyfaktory import Client, Job, Producer

    client = Client(faktory_url=server.url, role="producer")
    client.connect()
    stack.callback(client.disconnect)
    producer = Producer(client=client)
    return lambda job: producer.push(Job(jid=job["jid"], jobtype="noop", args=[], queue="bench"))


def _raw(server: BenchServer, stack: ExitStack) -> Pusher:
    conn = raw.RawConnection(server.port)
    stack.callback(conn.close)
    line = b'PUSH {"jid":"%s","jobtype":"noop","args":[],"queue":"bench"}\r\n'
    return lambda job: conn.call(line % job["jid"].encode())


OPENERS: dict[str, Callable[[BenchServer, ExitStack], Pusher]] = {
    "werk_client": _werk,
    "faktory": _faktory,
    "pyfaktory": _pyfaktory,
    "raw": _raw,
}
