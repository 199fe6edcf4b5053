"""Taskiq: one no-op task on the local Redis (DB 4, or $BENCH_REDIS_URL), via a list queue."""

import asyncio
import os

from counting import done
from taskiq_redis import ListQueueBroker

broker = ListQueueBroker(url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/4"))


@broker.task
async def noop() -> None:
    done()


async def _enqueue(n: int) -> None:
    await broker.startup()
    for start in range(0, n, 1000):
        await asyncio.gather(*(noop.kiq() for _ in range(min(1000, n - start))))
    await broker.shutdown()


def enqueue(n: int) -> None:
    asyncio.run(_enqueue(n))
