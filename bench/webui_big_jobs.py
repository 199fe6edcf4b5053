"""Time web UI pages of queues holding huge jobs, and how long INFO waits meanwhile.

Each case starts a fresh ``werk server`` (embedded SQLite, web UI on), pushes its jobs over
a raw socket, then GETs ``/queues/<q>`` (``--repeat`` times) and the first job's page while
another thread sends INFO on the work port in a loop; the longest INFO wait is the stall a
page render puts on every client. The cases are the ones a trial found:

- ``ints``: one job with 1,000,000 top-level int args (a 2 MB PUSH line);
- ``lists``: 25 jobs with one 400 KB list arg each;
- ``huge``: ``--huge`` jobs of about 15 MiB each (one list of ints).

    .venv/bin/python bench/webui_big_jobs.py [--before COMMIT] [--repeat 3] [--huge 3]

``--before`` also runs every case against ``src/`` of that commit (a server of that
version, same client), to give before/after figures.
"""

from __future__ import annotations

import argparse
import functools
import json
import threading
import time
import urllib.request
from typing import Any

from push_path import checkout_src, run_with

from werk.benchmarks.harness import WEB_UI, BenchServer
from werk.benchmarks.raw import OK, RawConnection


def cases(huge: int) -> dict[str, list[dict[str, Any]]]:
    """Return each case's jobs (all in queue ``big``)."""
    job = {"jobtype": "Big", "queue": "big"}
    return {
        "ints": [{**job, "jid": "ints-00000000", "args": [1] * 1_000_000}],
        "lists": [
            {**job, "jid": f"list-{i:08d}", "args": [list(range(60_000))]} for i in range(25)
        ],
        "huge": [
            {**job, "jid": f"huge-{i:08d}", "args": [list(range(2_000_000))]} for i in range(huge)
        ],
    }


class InfoLoop(threading.Thread):
    """Send INFO in a loop on its own connection; keep the longest wait for a reply."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.conn = RawConnection(port)
        self.longest = 0.0
        self.count = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            started = time.perf_counter()
            self.conn.call(b"INFO\r\n")
            self.longest = max(self.longest, time.perf_counter() - started)
            self.count += 1
            time.sleep(0.005)


def get(url: str) -> tuple[float, int]:
    """GET ``url``; return its seconds and its body's bytes."""
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as reply:
        size = len(reply.read())
    return time.perf_counter() - started, size


def measure(jobs: list[dict[str, Any]], repeat: int) -> dict[str, Any]:
    """Push ``jobs`` into a fresh server, then time its pages under an INFO loop."""
    with BenchServer(web=True) as server:  # __enter__ starts it
        conn = RawConnection(server.port)
        for job in jobs:
            line = json.dumps(job, separators=(",", ":")).encode()
            reply = conn.call(b"PUSH " + line + b"\r\n")
            assert reply == OK, reply[:200]
        conn.close()
        match = WEB_UI.search(server.log)
        assert match is not None, server.log
        web = match.group(1).decode()
        pinger = InfoLoop(server.port)
        pinger.start()
        queue = [get(f"{web}/queues/big") for _ in range(repeat)]
        job_page = get(f"{web}/jobs/{jobs[0]['jid']}")
        pinger.done.set()
        pinger.join()
    return {
        "queue_page_s": [round(s, 3) for s, _ in queue],
        "queue_page_bytes": queue[0][1],
        "job_page_s": round(job_page[0], 3),
        "job_page_bytes": job_page[1],
        "longest_info_wait_s": round(pinger.longest, 3),
        "info_calls": pinger.count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="a commit to measure too, e.g. main~1")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--huge", type=int, default=3)
    parser.add_argument("--only", help="one case: ints, lists or huge")
    args = parser.parse_args()
    versions = {"after": ""}
    if args.before:
        versions = {"before": str(checkout_src(args.before)), **versions}
    report: dict[str, dict[str, Any]] = {}
    for name, jobs in cases(args.huge).items():
        if args.only and name != args.only:
            continue
        for version, src in versions.items():
            result = run_with(src, functools.partial(measure, jobs, args.repeat))
            report.setdefault(name, {})[version] = result
            print(name, version, json.dumps(result), flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
