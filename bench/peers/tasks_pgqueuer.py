"""PGQueuer: one no-op entrypoint on the benchmark's PostgreSQL database ($BENCH_PG_URL)."""

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from counting import done
from pgqueuer import PgQueuer
from pgqueuer.models import Job
from pgqueuer.queries import Queries


@asynccontextmanager
async def main() -> AsyncIterator[PgQueuer]:
    """The worker factory (``pgq run tasks_pgqueuer:main``)."""
    conn = await asyncpg.connect(os.environ["BENCH_PG_URL"])
    pgq = PgQueuer.from_asyncpg_connection(conn)

    @pgq.entrypoint("noop")
    async def noop(job: Job) -> None:
        done()

    yield pgq
    await conn.close()


def enqueue(n: int) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(os.environ["BENCH_PG_URL"])
        queries = Queries.from_asyncpg_connection(conn)
        for start in range(0, n, 1000):
            size = min(1000, n - start)
            await queries.enqueue(["noop"] * size, [None] * size, [0] * size)
        await conn.close()

    asyncio.run(run())
