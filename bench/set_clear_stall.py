"""How long clearing (or requeueing) a big retry set stalls other clients' PUSHes, before
and after.

Fills a retry set with N jobs (default 200,000; every other one asks for a result, so the
results middleware hears of it when it is deleted), starts ``werk server`` on that store,
then sends MUTATE ``clear`` (``--cmd requeue``: ``requeue`` with no filter) on the retry
set while another connection PUSHes one job at a time, and prints the command's duration
and the PUSH round trips during it (the longest is how long a PUSH waited behind it).
"before" runs the server of ``--before`` (default ``main``), "after" this checkout's
``src``; the store is filled by this checkout (the layout is the same)::

    .venv/bin/python bench/set_clear_stall.py                     # SQLite, before and after
    .venv/bin/python bench/set_clear_stall.py --storage redis://127.0.0.1:6379/0 -n 200000
    .venv/bin/python bench/set_clear_stall.py --cmd requeue       # a whole-set requeue

``--storage`` takes a Redis or PostgreSQL URL (each run fills a fresh key prefix or schema,
flushed afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import IO

from worker_before_after import ROOT, _extract

from werk.benchmarks.harness import LISTENING
from werk.client import Client
from werk.storage import open_store
from werk.storage.base import Entry, Scored

FILL = 5000
"""Entries added per store call while filling."""


def entries(n: int, now: float) -> list[Scored]:
    """``n`` failed jobs due in a day, every other one asking for a result."""
    out = []
    for i in range(n):
        jid = f"r{i:07d}-{uuid.uuid4().hex[:8]}"
        job = {"jid": jid, "jobtype": "Work", "queue": "work", "args": [i], "retry": 25}
        if i % 2:
            job["custom"] = {"result_ttl": 600}
        job["failure"] = {"retry_count": 1, "errtype": "ValueError", "message": "bad input"}
        body = json.dumps(job, separators=(",", ":")).encode()
        out.append(Scored(now + 86400 + i, Entry(jid, "work", "Work", 5, 1800, body)))
    return out


async def fill(url: str, n: int) -> None:
    store = open_store(url, "os")
    await store.open()
    try:
        items = entries(n, time.time())
        for start in range(0, n, FILL):
            await store.add("retries", items[start : start + FILL])
        assert await store.set_size("retries") == n
    finally:
        await store.close()


def fresh(storage: str) -> str:
    """``storage`` with a key prefix (Redis) or schema (PostgreSQL) of its own."""
    option = "prefix=clear{}:" if storage.startswith("redis") else "schema=clear{}"
    return f"{storage}{'&' if '?' in storage else '?'}{option.format(uuid.uuid4().hex[:12])}"


def serve(src: Path, data: Path, storage: str | None) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``werk server`` from ``src`` on ``data`` (or ``storage``); return it and its
    port."""
    args = [sys.executable, "-m", "werk", "server", "-b", "127.0.0.1:0", "-w", ":0"]
    args += ["-d", str(data), "-l", "info"]
    if storage:
        args += ["--storage", storage]
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    log = b""
    while (match := LISTENING.search(log)) is None:
        line = proc.stderr.readline()
        if not line:
            raise RuntimeError(f"werk server did not start: {log.decode(errors='replace')}")
        log += line
    threading.Thread(target=_echo_errors, args=(proc.stderr,), daemon=True).start()
    return proc, int(match.group(1))


def _echo_errors(stream: IO[bytes]) -> None:
    for line in stream:
        if not line.startswith(b"I "):
            sys.stderr.write(line.decode(errors="replace"))


def push_meanwhile(url: str, stop: threading.Event, waits: list[float]) -> None:
    """PUSH one job at a time until ``stop``, recording each round trip (seconds)."""
    with Client(url, timeout=3600) as client:
        while not stop.is_set():
            began = time.perf_counter()
            client.push({"jobtype": "Ping", "queue": "pings", "args": []})
            waits.append(time.perf_counter() - began)


def one_run(version: str, src: Path, n: int, storage: str | None, cmd: str) -> None:
    with tempfile.TemporaryDirectory(prefix="werk-clear-") as tmp:
        data = Path(tmp)
        url = storage and fresh(storage)
        asyncio.run(fill(url or str(data), n))
        proc, port = serve(src, data, url)
        try:
            server = f"tcp://127.0.0.1:{port}"
            stop, waits = threading.Event(), list[float]()
            pusher = threading.Thread(target=push_meanwhile, args=(server, stop, waits))
            pusher.start()
            time.sleep(1.0)
            idle = sorted(waits)
            mark = len(waits)
            with Client(server, timeout=3600) as client:
                began = time.perf_counter()
                client.mutate(cmd, "retries")
                took = time.perf_counter() - began
                info = client.info()["faktory"]
                left, queued = info["sets"]["retries"], info["queues"].get("work", 0)
            stop.set()
            pusher.join()
        finally:
            proc.terminate()
            proc.wait()
            if url:
                asyncio.run(_flush(url))
    during = sorted(waits[mark:])
    p99 = during[int(len(during) * 0.99)] if during else 0.0
    print(
        f"{version:>6}: {cmd} {took:6.2f} s ({left} left, {queued} queued);"
        f" {len(during)} PUSHes meanwhile,"
        f" longest {max(during, default=0) * 1000:7.1f} ms, p99 {p99 * 1000:6.1f} ms"
        f" (idle median {idle[len(idle) // 2] * 1000:.2f} ms)",
        flush=True,
    )


async def _flush(url: str) -> None:
    """Delete what the run left under its Redis prefix."""
    store = open_store(url)
    await store.open()
    try:
        await store.flush()
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=200_000, help="jobs in the retry set")
    parser.add_argument("--storage", help="a Redis or PostgreSQL URL (default: SQLite)")
    parser.add_argument("--before", default="main", help="commit of the before server")
    parser.add_argument("--only", choices=["before", "after"], help="run one version")
    parser.add_argument("--cmd", choices=["clear", "requeue"], default="clear")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="werk-clear-before-") as tmp:
        _extract(args.before, ("src",), Path(tmp))
        trees = {"before": Path(tmp) / "src", "after": ROOT / "src"}
        for version, src in trees.items():
            if args.only in (None, version):
                one_run(version, src, args.n, args.storage, args.cmd)


if __name__ == "__main__":
    main()
