"""Dramatiq: one no-op actor on the local Redis (DB 4, or $BENCH_REDIS_URL)."""

import os

import dramatiq
from counting import done
from dramatiq.brokers.redis import RedisBroker

dramatiq.set_broker(RedisBroker(url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/4")))


@dramatiq.actor(max_retries=0)
def noop() -> None:
    done()


def enqueue(n: int) -> None:
    for _ in range(n):
        noop.send()
