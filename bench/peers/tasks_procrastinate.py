"""Procrastinate: one no-op task on the benchmark's PostgreSQL database ($BENCH_PG_URL)."""

import os

from counting import done
from procrastinate import App, PsycopgConnector

app = App(connector=PsycopgConnector(conninfo=os.environ["BENCH_PG_URL"]))


@app.task(name="noop")
def noop() -> None:
    done()


def enqueue(n: int) -> None:
    with app.open():
        for start in range(0, n, 1000):
            noop.batch_defer(*({} for _ in range(min(1000, n - start))))
