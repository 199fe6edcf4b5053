"""Time the web UI's Retries pages with 100,000 jobs in the retry set.

The jobs go straight into the set through the manager's store (``store.add("retries",
...)`` in batches of 5,000), which is far quicker than PUSHB + FETCH + FAIL and gives the
same stored entries (a body with a ``failure`` record, scored by the next retry time).
Then the first page, the last page, a filtered page and a job's detail page are fetched
over real HTTP from the server's own web port; the median of several requests is shown.

    .venv/bin/python bench/webui_pages.py [--jobs 100000] [--repeat 7] [--storage URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from werk.cli.server import build_server
from werk.manager.entries import make_entry
from werk.server.config import ServerConfig
from werk.server.server import Server
from werk.storage.base import Scored

BATCH = 5000


def retry_job(i: int, now: float) -> Scored:
    """Return the stored form of a job that failed once and waits for its retry."""
    job = {
        "jid": f"bench-{i:08d}",
        "jobtype": "Report" if i % 2 else "Invoice",
        "queue": "default" if i % 10 else "critical",
        "args": [i, "customer@example.com", {"page": i % 50}],
        "priority": 5,
        "retry": 25,
        "created_at": "2024-01-01T00:00:00Z",
        "failure": {
            "retry_count": 0,
            "remaining": 25,
            "failed_at": "2024-01-01T00:00:01Z",
            "message": f"connection refused (attempt {i})",
            "errtype": "ConnectionError",
            "backtrace": ["app/report.py:12 in run", "lib/http.py:88 in get"],
        },
    }
    return Scored(now + 3600 + i, make_entry(job))


async def fill(server: Server, count: int) -> float:
    """Insert ``count`` retries; return the seconds it took."""
    started = time.perf_counter()
    now = time.time()
    for start in range(0, count, BATCH):
        items = [retry_job(i, now) for i in range(start, min(count, start + BATCH))]
        await server.manager.store.add("retries", items)
    return time.perf_counter() - started


async def median_ms(client: httpx.AsyncClient, path: str, repeat: int) -> float:
    """GET ``path`` ``repeat`` times (after one warm-up); return the median in ms."""
    assert (await client.get(path)).status_code == 200, path
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = await client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, path
    return statistics.median(times)


async def main(jobs: int, repeat: int, storage: str | None) -> None:
    """Fill a fresh server, then time the pages and print a JSON report."""
    with tempfile.TemporaryDirectory() as data:
        config = ServerConfig(
            binding=("127.0.0.1", 0),
            web_binding=("127.0.0.1", 0),
            data_dir=Path(data),
            storage_url=storage,
        )
        server = build_server(config)
        await server.start()
        try:
            if storage is not None:
                await server.manager.flush()
            seconds = await fill(server, jobs)
            last = -(-jobs // 25)
            pages = {
                "first page": "/retries",
                "last page": f"/retries?page={last}",
                "middle page": f"/retries?page={last // 2}",
                "filtered by queue, first page": "/retries?queue=critical",
                "filtered by text, first page": "/retries?q=attempt+4242)",
                "one job": "/retries/bench-00004242",
                "dashboard": "/",
            }
            base = f"http://127.0.0.1:{server.web_port}"
            async with httpx.AsyncClient(base_url=base, timeout=120) as client:
                timings = {name: await median_ms(client, p, repeat) for name, p in pages.items()}
        finally:
            if storage is not None:
                await server.manager.flush()  # leave the Redis prefix empty
            await server.stop()
    report = {
        "jobs": jobs,
        "storage": storage or "sqlite",
        "fill_seconds": round(seconds, 2),
        "median_ms": {k: round(v, 1) for k, v in timings.items()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument(
        "--storage", default=None, help="e.g. redis://127.0.0.1:6379/3?prefix=werkbench:"
    )
    args = parser.parse_args()
    asyncio.run(main(args.jobs, args.repeat, args.storage))
