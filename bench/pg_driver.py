"""Push/fetch microbenchmark of the two asyncio PostgreSQL drivers Werk could use.

Each driver, in the same run, on a scratch database of its own: ``CONCURRENCY`` tasks share
a pool of ``POOL`` connections; *push* is one INSERT per job (autocommit), *fetch* is one
DELETE ... FOR UPDATE SKIP LOCKED ... RETURNING per job, as Werk's queue statements are.
Rerun: ``.venv/bin/python bench/pg_driver.py [jobs] [rounds]`` (needs PostgreSQL on
127.0.0.1:5432, user postgres, trust auth). Prints jobs/s per driver and operation.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import psycopg
from psycopg_pool import AsyncConnectionPool

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
CONCURRENCY = 20
POOL = 10
SCHEMA = (
    "CREATE TABLE jobs (id bigserial PRIMARY KEY, queue text NOT NULL, priority smallint"
    " NOT NULL, jid text NOT NULL, body bytea NOT NULL)",
    "CREATE INDEX jobs_fetch ON jobs (queue, priority DESC, id)",
)
PUSH = "INSERT INTO jobs (queue, priority, jid, body) VALUES ('default', 5, $1, $2)"
FETCH = (
    "DELETE FROM jobs WHERE id = (SELECT id FROM jobs WHERE queue = 'default'"
    " ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING jid, body"
)
BODY = b'{"jid":"0123456789abcdef","jobtype":"noop","args":[1,2,3],"queue":"default"}'


async def timed(n: int, op: Callable[[int], Awaitable[None]]) -> float:
    """Run ``op`` ``n`` times over ``CONCURRENCY`` tasks; return operations per second."""

    async def task(part: range) -> None:
        for i in part:
            await op(i)

    start = time.perf_counter()
    await asyncio.gather(*(task(range(k, n, CONCURRENCY)) for k in range(CONCURRENCY)))
    return n / (time.perf_counter() - start)


async def with_asyncpg(dsn: str, n: int) -> tuple[float, float]:
    pool = await asyncpg.create_pool(dsn, min_size=POOL, max_size=POOL)

    async def push(i: int) -> None:
        await pool.execute(PUSH, f"jid{i}", BODY)

    async def fetch(i: int) -> None:
        await pool.fetchrow(FETCH)

    result = await timed(n, push), await timed(n, fetch)
    await pool.close()
    return result


async def with_psycopg(dsn: str, n: int) -> tuple[float, float]:
    pool = AsyncConnectionPool(
        dsn, min_size=POOL, max_size=POOL, open=False, kwargs={"autocommit": True}
    )
    await pool.open(wait=True)
    push_sql, fetch_sql = PUSH.replace("$1", "%s").replace("$2", "%s"), FETCH

    async def push(i: int) -> None:
        async with pool.connection() as conn:
            await conn.execute(push_sql, (f"jid{i}", BODY))

    async def fetch(i: int) -> None:
        async with pool.connection() as conn:
            await (await conn.execute(fetch_sql)).fetchone()

    result = await timed(n, push), await timed(n, fetch)
    await pool.close()
    return result


async def scratch(name: str) -> str:
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = ADMIN.rsplit("/", 1)[0] + f"/{name}"
    conn = await asyncpg.connect(dsn)
    for statement in SCHEMA:
        await conn.execute(statement)
    await conn.close()
    return dsn


async def drop(name: str) -> None:
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await admin.close()


async def main(n: int, rounds: int) -> None:
    runs: dict[str, list[tuple[float, float]]] = {"asyncpg": [], "psycopg": []}
    drivers = {"asyncpg": with_asyncpg, "psycopg": with_psycopg}
    for _ in range(rounds):
        for label, run in drivers.items():  # alternate, so both see the same noise
            name = f"werkbench_{uuid.uuid4().hex[:12]}"
            try:
                runs[label].append(await run(await scratch(name), n))
            finally:
                await drop(name)
    print(f"{n} jobs, {CONCURRENCY} tasks, pool {POOL}, {rounds} rounds (median jobs/s)")
    for label, got in runs.items():
        push = statistics.median(p for p, _ in got)
        fetch = statistics.median(f for _, f in got)
        print(f"{label:8s} push {push:8.0f}  fetch {fetch:8.0f}")
    print(f"psycopg {psycopg.__version__}, asyncpg {asyncpg.__version__}")


if __name__ == "__main__":
    asyncio.run(
        main(
            int(sys.argv[1]) if len(sys.argv) > 1 else 5000,
            int(sys.argv[2]) if len(sys.argv) > 2 else 3,
        )
    )
