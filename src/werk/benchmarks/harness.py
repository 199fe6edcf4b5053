"""Processes and measurements shared by the scenarios: a server, workers, RSS, statistics."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

LISTENING = re.compile(rb"listening on [^\s:]+:(\d+)")
WEB_UI = re.compile(rb"Web UI on (http://\S+?)/?\s")


@dataclass
class BenchServer:
    """A ``werk server`` subprocess on a free port, with a fresh store.

    ``storage`` is ``"sqlite"`` (a temporary data directory, fsync on), a Redis URL (a
    fresh key prefix, deleted afterwards) or a PostgreSQL URL (a fresh schema, dropped
    afterwards). ``durability`` is the
    embedded store's ``--durability`` (``fsync`` or ``os``).
    """

    storage: str = "sqlite"
    durability: str = "fsync"
    web: bool = False
    """Whether to run the web UI (for :meth:`commits`, read from its ``/metrics``)."""
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log: bytearray = field(default_factory=bytearray)
    prefix: str = ""
    wrapper: tuple[str, ...] = ()
    """A command the server runs under (``valgrind --tool=callgrind ...``)."""
    pythonpath: str = ""
    """Put first on the server's ``PYTHONPATH`` (another version's ``src``)."""

    def start(self) -> BenchServer:
        """Start the server and wait until it listens."""
        data = tempfile.mkdtemp(prefix="werk-bench-")
        web = "127.0.0.1:0" if self.web else ":0"
        args = [sys.executable, "-m", "werk", "server", "-b", "127.0.0.1:0", "-w", web]
        args += ["-d", data, "-l", "info"]
        if self.durability != "fsync":  # the default; servers from before the flag run too
            args += ["--durability", self.durability]
        if self.postgres:  # ``prefix`` names the schema of its own
            self.prefix = self.prefix or f"werkbench_{uuid4().hex[:12]}"
            args += ["--storage", f"{self.storage}?schema={self.prefix}"]
        elif self.storage != "sqlite":
            self.prefix = self.prefix or f"werkbench:{uuid4().hex}:"
            joint = "&" if "?" in self.storage else "?"
            args += ["--storage", f"{self.storage}{joint}prefix={self.prefix}"]
        env = {**os.environ, "PYTHONPATH": self.pythonpath} if self.pythonpath else None
        self.proc = subprocess.Popen([*self.wrapper, *args], stderr=subprocess.PIPE, env=env)
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + (300 if self.wrapper else 20)
        while time.monotonic() < deadline:
            match = LISTENING.search(self.log)
            if match:
                self.port = int(match.group(1))
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"werk server did not start: {self.log.decode(errors='replace')}")

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log += line

    @property
    def postgres(self) -> bool:
        """Whether ``storage`` is a PostgreSQL URL (a fresh schema per server set)."""
        return self.storage.startswith(("postgresql://", "postgres://"))

    @property
    def url(self) -> str:
        """The server's ``tcp://`` URL."""
        return f"tcp://127.0.0.1:{self.port}"

    def commits(self) -> tuple[float, float] | None:
        """Return the embedded store's commits so far and their total seconds (from the
        web UI's ``/metrics``), or ``None`` for a store without a writer of its own."""
        match = WEB_UI.search(self.log)
        if match is None:
            return None
        with urllib.request.urlopen(match.group(1).decode() + "/metrics", timeout=10) as reply:
            text = reply.read().decode()
        values = {
            name: float(value)
            for name, _, value in (line.partition(" ") for line in text.splitlines())
            if name in ("werk_store_commits_total", "werk_store_commit_duration_seconds_sum")
        }
        if len(values) < 2:
            return None
        return values["werk_store_commits_total"], values["werk_store_commit_duration_seconds_sum"]

    def rss_mb(self) -> float:
        """Return the server's resident memory in MB."""
        assert self.proc is not None
        return rss_mb(self.proc.pid)

    def stop(self, keep_data: bool = False) -> None:
        """Stop the server and delete its Redis keys, if any (unless ``keep_data``)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        if self.prefix and not keep_data and self.postgres:
            import psycopg

            with psycopg.connect(self.storage, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {self.prefix} CASCADE")
        elif self.prefix and not keep_data:
            import redis

            client = redis.Redis.from_url(self.storage)
            keys = list(client.scan_iter(match=self.prefix + "*", count=5000))
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start : start + 1000])
            client.close()

    def __enter__(self) -> BenchServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def rss_mb(pid: int) -> float:
    """Return the resident set size of a process in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_workers(
    url: str, count: int, concurrency: int, env: dict[str, str] | None = None
) -> list[subprocess.Popen[bytes]]:
    """Start ``count`` ``werk worker`` processes running the benchmark jobs."""
    args = [sys.executable, "-m", "werk", "worker", "werk.benchmarks.jobs:worker"]
    args += ["-c", str(concurrency), "--url", url, "-l", "warning", "-q", "bench"]
    full_env = {**os.environ, **(env or {})}
    return [subprocess.Popen(args, env=full_env) for _ in range(count)]


def stop_workers(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """Stop worker processes (SIGTERM, then SIGKILL after 10 s)."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def percentile(values: Sequence[float], q: float) -> float:
    """Return the ``q``-th percentile (0..100) by nearest rank."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    """Return the median."""
    return statistics.median(values)


def jobs(n: int, queue: str = "bench", tag: str = "", **fields: Any) -> list[dict[str, Any]]:
    """Return ``n`` no-op job payloads with unique jids (``fields`` override the rest)."""
    tag = tag + uuid4().hex[:8]
    base = {"jobtype": "noop", "args": [], "queue": queue}
    return [{"jid": f"{tag}{i:012d}", **base, **fields} for i in range(n)]
