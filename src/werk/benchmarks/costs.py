"""Scenarios that split a job's cost between the parts, and the N-server model on Redis.

- ``costs``: N jobs pushed with PUSHB of 1,000, then drained by two ``werk worker``
  processes. Per job: the server's CPU (push + drain, from ``/proc/<pid>/stat``), the
  workers' CPU, and on Redis the commands Redis ran (``INFO stats``
  ``total_commands_processed``, which counts the commands inside scripts) and the CPU of
  Redis' main thread (``INFO cpu``). From those it predicts the drain rate of N servers
  sharing one Redis (see :func:`model`).
- ``drain_raw``: the same drain by two consumer processes that only FETCH and ACK (50
  connections each, no job execution): the server and store path without the worker's work.
- ``push_producers``: 16 producers each pushing one job at a time, waiting for each ``+OK``.

Run them on a Redis of your own (``redis-server --port 6390 --save "" --appendonly no``):
other clients' commands on a shared Redis would count as Werk's.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any

from werk.benchmarks.harness import BenchServer, jobs, start_workers, stop_workers
from werk.client import AsyncClient, Client

WORKERS = 2
CONCURRENCY = 50
MODEL_SERVERS = (1, 2, 4, 8)


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU seconds a process has used so far (Linux)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RedisMeter:
    """Commands and main-thread CPU of a Redis, read with ``INFO`` (``None`` for SQLite)."""

    def __init__(self, storage: str) -> None:
        self.client: Any = None
        if storage != "sqlite":
            import redis

            self.client = redis.Redis.from_url(storage)

    def read(self) -> tuple[int, float]:
        """Return (commands processed, CPU seconds of the main thread) so far."""
        if self.client is None:
            return 0, 0.0
        stats, cpu = self.client.info("stats"), self.client.info("cpu")
        main = cpu.get("used_cpu_user_main_thread", cpu["used_cpu_user"])
        main += cpu.get("used_cpu_sys_main_thread", cpu["used_cpu_sys"])
        return int(stats["total_commands_processed"]), float(main)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


def _fill(client: Client, n: int) -> None:
    for start in range(0, n, 1000):
        client.push_bulk(jobs(min(1000, n - start)))


def _processed(client: Client) -> int:
    return int(client.info()["faktory"]["total_processed"])


def _drained(client: Client, target: int, timeout: float = 600) -> float:
    deadline = time.monotonic() + timeout
    while _processed(client) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {target} jobs processed in {timeout} s")
        time.sleep(0.02)
    return time.monotonic()


def model(server_us: float, redis_us: float) -> dict[str, float]:
    """Predict the drain rate of 1, 2, 4 and 8 servers on one Redis, in jobs/s.

    Each server is one Python process whose event loop does all its work, so one server
    drains at most ``1e6 / server_us`` jobs/s on a core of its own; Redis runs scripts on
    one thread, so all servers together get at most ``1e6 / redis_us``. Workers run
    beside each server on cores of their own and are not the bound. Both inputs are the
    CPU per job measured in this run; the prediction is ``min(N * server, redis)``.
    """
    per_server = 1e6 / server_us if server_us else 0.0
    ceiling = 1e6 / redis_us if redis_us else float("inf")
    return {f"model_{n}_servers": min(n * per_server, ceiling) for n in MODEL_SERVERS}


def costs(storage: str, n: int) -> dict[str, Any]:
    """Push N jobs, drain them with two worker processes; CPU and commands per job."""
    meter = RedisMeter(storage)
    try:
        with BenchServer(storage) as server, Client(server.url) as client:
            assert server.proc is not None
            pid = server.proc.pid
            cmd0, redis0 = meter.read()
            cpu0 = cpu_seconds(pid)
            _fill(client, n)
            workers = start_workers(server.url, WORKERS, CONCURRENCY)
            try:
                first_at = _drained(client, 1)
                first = _processed(client)
                busy0 = sum(cpu_seconds(w.pid) for w in workers)
                last_at = _drained(client, n)
                busy1 = sum(cpu_seconds(w.pid) for w in workers)
            finally:
                stop_workers(workers)
            cmd1, redis1 = meter.read()
            cpu1 = cpu_seconds(pid)
    finally:
        meter.close()
    server_us = (cpu1 - cpu0) / n * 1e6
    redis_us = (redis1 - redis0) / n * 1e6
    out = {
        "jobs_per_s": (n - first) / (last_at - first_at),
        "server_us_per_job": server_us,
        "worker_us_per_job": (busy1 - busy0) / max(1, n - first) * 1e6,
        "redis_commands_per_job": (cmd1 - cmd0) / n,
        "redis_us_per_job": redis_us,
    }
    return out | model(server_us, redis_us if meter.client is not None else 0.0)


async def _consume(url: str, connections: int) -> None:
    # Raw protocol, no client library: HELLO once, then FETCH and ACK for ever.
    host, port = url.removeprefix("tcp://").rsplit(":", 1)

    async def loop(n: int) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        await reader.readline()  # +HI
        writer.write(b'HELLO {"v":2,"wid":"raw-%d-%d"}\r\n' % (os.getpid(), n))
        await reader.readline()  # +OK
        while True:
            writer.write(b"FETCH bench\r\n")
            head = await reader.readline()
            if head.startswith(b"$-1"):
                continue
            body = await reader.readexactly(int(head[1:]) + 2)
            start = body.index(b'"jid":"') + 7
            jid = body[start : body.index(b'"', start)]
            writer.write(b'ACK {"jid":"%b"}\r\n' % jid)
            await reader.readline()  # +OK

    await asyncio.gather(*(loop(n) for n in range(connections)))


def drain_raw(storage: str, n: int) -> dict[str, Any]:
    """N queued jobs drained by two processes that only FETCH and ACK (50 connections each)."""
    with BenchServer(storage) as server, Client(server.url) as client:
        _fill(client, n)
        args = [sys.executable, "-m", "werk.benchmarks.costs", server.url, str(CONCURRENCY)]
        consumers = [subprocess.Popen(args) for _ in range(WORKERS)]
        try:
            first_at = _drained(client, 1)
            first = _processed(client)
            last_at = _drained(client, n)
        finally:
            stop_workers(consumers)
    return {"jobs_per_s": (n - first) / (last_at - first_at)}


def push_producers(storage: str, n: int, producers: int = 16) -> dict[str, Any]:
    """``producers`` concurrent producers, each pushing one job at a time."""

    async def produce_all(url: str) -> float:
        async with AsyncClient(url, pool_size=producers) as client:
            payload = jobs(n)

            async def produce(k: int) -> None:
                for job in payload[k::producers]:
                    await client.push(job)

            started = time.perf_counter()
            await asyncio.gather(*(produce(k) for k in range(producers)))
            return n / (time.perf_counter() - started)

    with BenchServer(storage) as server:
        return {"jobs_per_s": asyncio.run(produce_all(server.url))}


if __name__ == "__main__":  # a drain_raw consumer process: URL, connections
    asyncio.run(_consume(sys.argv[1], int(sys.argv[2])))
