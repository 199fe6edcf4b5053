"""Soak: N jobs through one server with memory flat and nothing lost.

A producer pushes in PUSHB batches of 1,000, keeping at most ``backlog`` jobs queued;
worker threads (Werk's :class:`~werk.client.Client`) FETCH and ACK, and FAIL about 10%
(those carry ``retry: 0``, so a failure ends the job instead of scheduling a retry 15+ s
ahead). The server's RSS is sampled every half second. At the end INFO must count every
job: ``total_processed`` = N (ACKs + FAILs) and ``total_failures`` = the FAILs sent, with
every queue and set empty; and the last RSS sample must be within ``--growth`` percent of
the sample taken after warm-up (a fifth of the jobs).

Full run: ``python -m tests.reliability.soak --jobs 1000000`` (``--storage redis://...``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import ServerProcess
from tests.reliability.support import connect, rss_mb
from werk.client import Client

FAIL_EVERY = 10
BATCH = 1000


@dataclass
class SoakResult:
    jobs: int
    seconds: float
    processed: int
    failures: int
    failed_sent: int
    rss_warm: float
    rss_last: float
    rss_peak: float
    leftover: dict[str, int] = field(default_factory=dict)

    @property
    def growth(self) -> float:
        """Percent growth of RSS from warm-up to the end."""
        return 100 * (self.rss_last - self.rss_warm) / self.rss_warm

    def line(self) -> str:
        return (
            f"{self.jobs} jobs in {self.seconds:.1f} s ({self.jobs / self.seconds:.0f}/s): "
            f"processed {self.processed}, failures {self.failures} (sent {self.failed_sent}); "
            f"RSS warm {self.rss_warm:.1f} MB, last {self.rss_last:.1f} MB "
            f"({self.growth:+.1f}%), peak {self.rss_peak:.1f} MB; leftover {self.leftover}"
        )


@dataclass
class _State:
    url: str
    jobs: int
    backlog: int
    done: list[int]
    failed: list[int]
    pushed: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)


def _produce(st: _State) -> None:
    with Client(st.url, pool_size=1) as client:
        while st.pushed < st.jobs and not st.stop.is_set():
            if st.pushed - sum(st.done) > st.backlog:
                time.sleep(0.01)
                continue
            batch = []
            for n in range(st.pushed, min(st.jobs, st.pushed + BATCH)):
                job = {"jid": f"soak{n:010d}", "jobtype": "Soak", "args": [n, "x" * 64]}
                batch.append({**job, "retry": 0} if n % FAIL_EVERY == 0 else job)
            refused = client.push_bulk(batch)
            assert not refused, refused
            st.pushed += len(batch)


def _work(st: _State, index: int) -> None:
    with Client(st.url, pool_size=1) as client:
        while sum(st.done) < st.jobs and not st.stop.is_set():
            job = client.fetch("default")
            if job is None:
                continue
            if int(job["args"][0]) % FAIL_EVERY == 0:
                client.fail(job["jid"], "Soak", "planned failure")
                st.failed[index] += 1
            else:
                client.ack(job["jid"])
            st.done[index] += 1


def _guarded(st: _State, fn: Callable[..., None], *args: object) -> None:
    try:
        fn(st, *args)
    except BaseException as exc:
        st.errors.append(exc)
        st.stop.set()


def run(server: ServerProcess, jobs: int, workers: int = 4, backlog: int = 20_000) -> SoakResult:
    """Push ``jobs`` jobs through ``server`` and return what INFO and /proc saw."""
    assert server.proc is not None
    pid = server.proc.pid
    st = _State(f"tcp://{server.host}:{server.port}", jobs, backlog, [0] * workers, [0] * workers)
    threads = [threading.Thread(target=_guarded, args=(st, _produce))] + [
        threading.Thread(target=_guarded, args=(st, _work, i)) for i in range(workers)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    samples: list[float] = []
    warm = 0.0
    while any(t.is_alive() for t in threads):
        samples.append(rss_mb(pid))
        if not warm and sum(st.done) >= jobs // 5:
            warm = samples[-1]
        time.sleep(0.5)
    samples.append(rss_mb(pid))
    seconds = time.monotonic() - started
    if st.errors:
        raise st.errors[0]
    with connect(server.host, server.port) as conn:
        info = conn.info()["faktory"]
    leftover = {k: v for k, v in info["sets"].items() if v}
    leftover |= {k: v for k, v in info["queues"].items() if v}
    return SoakResult(
        jobs=jobs,
        seconds=seconds,
        processed=info["total_processed"],
        failures=info["total_failures"],
        failed_sent=sum(st.failed),
        rss_warm=warm or samples[0],
        rss_last=samples[-1],
        rss_peak=max(samples),
        leftover=leftover,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Soak a werk server with N jobs.")
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--growth", type=float, default=20.0, help="allowed RSS growth, %%")
    parser.add_argument("--storage", default=None, help="a --storage URL (default: SQLite)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="werk-soak-") as tmp:
        extra = ["--storage", args.storage] if args.storage else []
        server = ServerProcess(Path(tmp) / "data", extra_args=extra).start()
        try:
            result = run(server, args.jobs, args.workers)
        finally:
            server.kill()
    print(result.line())
    ok = (
        result.processed == args.jobs
        and result.failures == result.failed_sent == args.jobs // FAIL_EVERY
        and not result.leftover
        and result.growth <= args.growth
    )
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
