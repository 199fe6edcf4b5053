"""Huey: one no-op task on the local Redis (DB 4, or $BENCH_REDIS_URL)."""

import os

from counting import done
from huey import RedisHuey

huey = RedisHuey("werkbench", url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/4"))


@huey.task()
def noop() -> None:
    done()


def enqueue(n: int) -> None:
    for _ in range(n):
        noop()
