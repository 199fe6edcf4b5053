"""The server's memory while clients pipeline PUSHes and read no reply until all are sent.

Usage::

    .venv/bin/python bench/unread_replies.py [-c 1] [-n 300000] [--before COMMIT] [--storage URL]

Each of ``-c`` raw connections says HELLO, then one thread per connection writes ``-n``
PUSH lines (no-op jobs, about 90 bytes a line) with ``sendall`` and reads nothing until the
last byte is handed to the kernel; then it reads replies until it has one per PUSH (or the
server closes the connection). Meanwhile the server's ``VmRSS`` is sampled every 50 ms.
Printed per version (one JSON line): RSS before the first PUSH and at its peak (MB), when
the last client finished sending and when the last reply arrived (seconds from the first
PUSH; ``null`` if not within ``--seconds``), and the ``+OK`` replies received in all.
``--window N`` makes a client that reads its replies after every N PUSHes instead.
"before" is ``src/`` of ``--before`` put first on the server's ``PYTHONPATH``; "after" is
this checkout. Figures: docs/benchmarks.md ("A client that reads no reply")."""

from __future__ import annotations

import argparse
import json
import threading
import time
from typing import Any

from push_path import checkout_src, run_with

from werk.benchmarks.harness import BenchServer, rss_mb
from werk.benchmarks.raw import OK, RawConnection, push_lines

SAMPLE_EVERY = 0.05


class Flood(threading.Thread):
    """One connection: send every PUSH, then read the replies."""

    def __init__(self, port: int, lines: list[bytes], window: int) -> None:
        super().__init__(daemon=True)
        self.conn = RawConnection(port)
        self.lines = lines
        self.window = window or len(lines)
        self.size = sum(map(len, lines))
        self.sent_at = 0.0
        self.done_at = 0.0
        self.oks = 0
        self.error = ""

    def run(self) -> None:
        try:
            for start in range(0, len(self.lines), self.window):
                self.conn.sock.sendall(b"".join(self.lines[start : start + self.window]))
                self._read_replies(min(start + self.window, len(self.lines)))
        except (OSError, ConnectionError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.done_at = time.perf_counter()
            self.conn.close()

    def _read_replies(self, until: int) -> None:
        if until == len(self.lines):
            self.sent_at = time.perf_counter()
        while self.oks < until:
            if self.conn.reply() != OK:
                raise ConnectionError("a PUSH was refused")
            self.oks += 1


def measure(
    storage: str, durability: str, connections: int, pushes: int, window: int, seconds: float
) -> dict[str, Any]:
    with BenchServer(storage=storage, durability=durability) as server:
        assert server.proc is not None
        pid = server.proc.pid
        floods = [
            Flood(server.port, push_lines(pushes, tag=f"c{k}-"), window) for k in range(connections)
        ]
        baseline = rss_mb(pid)
        started = time.perf_counter()
        for flood in floods:
            flood.start()
        peak = baseline
        samples: list[tuple[float, float]] = []
        deadline = started + seconds
        while any(flood.is_alive() for flood in floods) and time.perf_counter() < deadline:
            rss = rss_mb(pid)
            peak = max(peak, rss)
            samples.append((round(time.perf_counter() - started, 2), round(rss, 1)))
            time.sleep(SAMPLE_EVERY)
        return {
            "connections": connections,
            "pushes_each": pushes,
            "window": window,
            "mb_sent_each": round(floods[0].size / 1e6, 1),
            "rss_before_mb": round(baseline, 1),
            "rss_peak_mb": round(peak, 1),
            "all_sent_s": _since(started, [f.sent_at for f in floods]),
            "all_replies_s": _since(started, [f.done_at for f in floods]),
            "oks": sum(f.oks for f in floods),
            "errors": sorted({f.error for f in floods if f.error}),
            "rss_every_s": samples[:: max(1, len(samples) // 20)],
        }


def _since(started: float, times: list[float]) -> float | None:
    """Seconds from ``started`` to the last of ``times`` (``None``: one has not happened)."""
    return None if not all(times) else round(max(times) - started, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-c", "--connections", type=int, default=1)
    parser.add_argument("-n", "--pushes", type=int, default=300_000)
    parser.add_argument(
        "--window", type=int, default=0, help="read replies after each N PUSHes (0: all sent)"
    )
    parser.add_argument(
        "--seconds", type=float, default=3600, help="stop measuring (and the server) after"
    )
    parser.add_argument("--storage", default="sqlite")
    parser.add_argument("--durability", default="fsync")
    parser.add_argument("--before", help="also measure this commit's server first")
    args = parser.parse_args()
    versions = [("after", None)]
    if args.before:
        versions.insert(0, ("before", str(checkout_src(args.before))))
    for name, pythonpath in versions:
        result = run_with(
            pythonpath,
            lambda: measure(
                args.storage,
                args.durability,
                args.connections,
                args.pushes,
                args.window,
                args.seconds,
            ),
        )
        print(json.dumps({"version": name, **result}), flush=True)


if __name__ == "__main__":
    main()
