"""Push throughput when one producer keeps several commands in flight.

Usage: .venv/bin/python bench/push_concurrency.py

PUSHB of 1,000 with 1 and 4 batches in flight, and single PUSH from 1 and 16 concurrent
producers (one AsyncClient each run), each against a fresh server on the embedded store.
It shows what group commit buys when pushes overlap.
"""

from __future__ import annotations

import asyncio
import json
import time

from werk.benchmarks.harness import BenchServer, jobs
from werk.client import AsyncClient


async def bulk(url: str, n: int, inflight: int) -> float:
    async with AsyncClient(url, pool_size=inflight) as client:
        batches = [jobs(1000) for _ in range(n // 1000)]
        gate = asyncio.Semaphore(inflight)

        async def one(batch: list[dict[str, object]]) -> None:
            async with gate:
                await client.push_bulk(batch)

        started = time.perf_counter()
        await asyncio.gather(*(one(batch) for batch in batches))
        return n / (time.perf_counter() - started)


async def single(url: str, n: int, producers: int) -> float:
    async with AsyncClient(url, pool_size=producers) as client:
        payload = jobs(n)

        async def produce(k: int) -> None:
            for job in payload[k::producers]:
                await client.push(job)

        started = time.perf_counter()
        await asyncio.gather(*(produce(k) for k in range(producers)))
        return n / (time.perf_counter() - started)


def main() -> None:
    for inflight in (1, 4):
        with BenchServer() as server:
            rate = asyncio.run(bulk(server.url, 100_000, inflight))
        print(json.dumps({"scenario": "pushb", "in_flight": inflight, "jobs_per_s": rate}))
    for producers in (1, 16):
        with BenchServer() as server:
            rate = asyncio.run(single(server.url, 20_000, producers))
        print(json.dumps({"scenario": "push", "producers": producers, "jobs_per_s": rate}))


if __name__ == "__main__":
    main()
