"""Render bench/results-redis.json (written by bench/redis_scaleout.py) as the Redis and
scale-out section of docs/benchmarks.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RERUN = """<!-- not-run: benchmark runs (minutes) -->
```sh
.venv/bin/python bench/redis_scaleout.py     # this section, about 15 minutes
.venv/bin/python bench/redis_scaleout.py --quick --no-peers   # Werk alone, for A/B
.venv/bin/python bench/redis_scaleout.py --only-unix   # PUSH rows, TCP vs Unix socket
.venv/bin/werk bench costs --storage redis://127.0.0.1:6390/3   # on a Redis of your own
```"""


def _f(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _ok(ok: bool) -> str:
    return "met" if ok else "**missed**"


def render(r: dict[str, Any]) -> str:
    """Return the Markdown section for a results dictionary."""

    def rate(key: str) -> float:
        return float(r[key]["jobs_per_s"])

    sq, rd = r["sqlite.costs"], r["redis.costs"]
    peers = {k.split(".", 1)[1]: rate(k) for k in r if k.startswith("peer.")}
    huey = peers.get("huey", 0.0)
    redis_us = rd["redis_us_per_job"]
    lines = [
        "## Werk on Redis, and N servers on one Redis",
        "",
        f"Measured {r['when']} on {r['machine']}, with a redis-server {r['redis']} of the",
        "benchmark's own (no persistence) on 127.0.0.1. The machine was shared with other",
        f"work (load average {r['load']:.1f} at the start, {r.get('load_end', 0):.1f} at the end),",
        "so compare the ratios within this run, not absolute numbers across runs. Medians of",
        f"{r['redis.drain']['rounds']} rounds, run round by round (every system once per round).",
        "",
        RERUN,
        "",
        "| | Werk on SQLite (fsync) | Werk on Redis (no persistence) | Redis / SQLite |",
        "|---|---|---|---|",
    ]

    def row(label: str, s: float, d: float, digits: int = 0) -> None:
        lines.append(f"| {label} | {_f(s, digits)} | {_f(d, digits)} | {d / s:.2f}x |")

    n_raw, n = r["sqlite.drain_raw"]["n"], r["sqlite.drain"]["n"]
    row(
        f"drain, 2 raw FETCH+ACK consumer processes, {n_raw:,} jobs, jobs/s",
        rate("sqlite.drain_raw"),
        rate("redis.drain_raw"),
    )
    row(f"drain, `werk bench drain` (`def` no-op), {n:,} jobs, jobs/s", *_pair(r, "drain"))
    row(f"drain, `werk bench drain_async`, {n:,} jobs, jobs/s", *_pair(r, "drain_async"))
    row(
        "server CPU per 1,000 jobs (push + drain), ms",
        sq["server_us_per_job"],
        rd["server_us_per_job"],
    )
    row("worker CPU per 1,000 jobs, ms", sq["worker_us_per_job"], rd["worker_us_per_job"])
    row("one producer, one PUSH at a time, jobs/s", *_pair(r, "push_single"))
    row("16 producers, one PUSH at a time each, jobs/s", *_pair(r, "push_producers"))
    for label, key in (("one producer", "push_single"), ("16 producers", "push_producers")):
        if f"redis_unix.{key}" in r:  # Werk to Redis over its Unix socket, as Faktory's
            row(
                f"{label}, Werk reaching Redis over its Unix socket, jobs/s",
                _pair(r, key)[0],
                float(r[f"redis_unix.{key}"]["jobs_per_s"]),
            )
    if "redis.push_path" in r:  # raw protocol producers, no client library
        sp, rp = r["sqlite.push_path"], r["redis.push_path"]
        for label, key in (("one raw producer", "push_1"), ("16 raw producers", "push_16")):
            row(
                f"{label} (`werk bench push_path`), one PUSH at a time, jobs/s",
                sp[f"fsync.{key}_per_s"],
                rp[f"backend.{key}_per_s"],
            )
            row(
                f"server CPU per PUSH, {label}, us",
                sp[f"fsync.{key}_cpu_us"],
                rp[f"backend.{key}_cpu_us"],
            )
    lines += [
        f"| Redis commands per job (push + fetch + ack, scripts' inner commands counted) | – |"
        f" {rd['redis_commands_per_job']:.2f} | |",
        f"| Redis CPU per job (main thread) | – | {redis_us:.1f} us (one Redis core: about"
        f" {_f(1e6 / redis_us)} jobs/s) | |",
        f"| two servers on one Redis, one worker process each, jobs/s | – |"
        f" {_f(rate('redis.drain_two_servers'))} | |",
        "",
        "Peers in the same run, on the same Redis, two worker processes each, "
        f"{r['peer.huey']['n']:,} jobs:",
        "",
        "| system | jobs/s | Werk on Redis (`def` / `async def`) vs it |",
        "|---|---|---|",
    ]
    for name, value in sorted(peers.items(), key=lambda kv: -kv[1]):
        ratio = f"{rate('redis.drain') / value:.2f}x / {rate('redis.drain_async') / value:.2f}x"
        lines.append(f"| {name} | {_f(value)} | {ratio} |")
    lines += ["", *_goals(r, huey), "", *_model(rd, sq)]
    analysis = Path(__file__).with_name("redis-analysis.md")
    if analysis.exists():
        lines += ["", analysis.read_text().rstrip()]
    return "\n".join(lines) + "\n"


def _pair(r: dict[str, Any], scenario: str) -> tuple[float, float]:
    return float(r[f"sqlite.{scenario}"]["jobs_per_s"]), float(r[f"redis.{scenario}"]["jobs_per_s"])


def _goals(r: dict[str, Any], huey: float) -> list[str]:
    rd, sq = r["redis.costs"], r["sqlite.costs"]
    drain, sqlite = r["redis.drain"]["jobs_per_s"], r["sqlite.drain"]["jobs_per_s"]
    checks = [
        (
            "drain on Redis >= 1.5x Huey",
            bool(huey) and drain >= 1.5 * huey,
            f"{drain / huey:.2f}x" if huey else "not run (--no-peers)",
        ),
        ("drain on Redis >= 0.7x SQLite", drain >= 0.7 * sqlite, f"{drain / sqlite:.2f}x"),
        (
            "server CPU per job on Redis <= 1.5x SQLite",
            rd["server_us_per_job"] <= 1.5 * sq["server_us_per_job"],
            f"{rd['server_us_per_job'] / sq['server_us_per_job']:.2f}x",
        ),
        (
            "Redis commands per job <= 8",
            rd["redis_commands_per_job"] <= 8,
            f"{rd['redis_commands_per_job']:.2f}",
        ),
        (
            "Redis CPU per job <= 20 us",
            rd["redis_us_per_job"] <= 20,
            f"{rd['redis_us_per_job']:.1f} us",
        ),
        _one_producer(r),
        (
            "16 producers >= 15,000 jobs/s",
            r["redis.push_producers"]["jobs_per_s"] >= 15000,
            _f(r["redis.push_producers"]["jobs_per_s"]),
        ),
    ]
    rows = ["| goal (issue 15) | measured | status |", "|---|---|---|"]
    return rows + [f"| {name} | {value} | {_ok(ok)} |" for name, ok, value in checks]


def _one_producer(r: dict[str, Any]) -> tuple[str, bool, str]:
    """The one-producer goal, over TCP and (when measured) over Redis' Unix socket."""
    tcp = float(r["redis.push_single"]["jobs_per_s"])
    unix = float(r.get("redis_unix.push_single", {}).get("jobs_per_s", 0.0))
    text = _f(tcp) + (f" over TCP, {_f(unix)} over Redis' Unix socket" if unix else "")
    return "one producer, one PUSH at a time >= 9,000 jobs/s", max(tcp, unix) >= 9000, text


def summary(r: dict[str, Any]) -> str:
    """Return the issue's figures as plain text: the goals, then the costs per job."""
    peers = {k.split(".", 1)[1]: float(r[k]["jobs_per_s"]) for k in r if k.startswith("peer.")}
    rd, sq = r["redis.costs"], r["sqlite.costs"]
    lines = _goals(r, peers.get("huey", 0.0))
    lines.append("")
    for key in ("drain_raw", "drain", "drain_async", "push_single", "push_producers"):
        s, d = _pair(r, key)
        lines.append(f"{key}: SQLite {_f(s)} jobs/s, Redis {_f(d)} jobs/s ({d / s:.2f}x)")
    lines += [f"peer {name}: {_f(rate)} jobs/s" for name, rate in sorted(peers.items())]
    for label, key in (("server", "server_us_per_job"), ("worker", "worker_us_per_job")):
        lines.append(f"{label} CPU per job: SQLite {sq[key]:.0f} us, Redis {rd[key]:.0f} us")
    lines.append(
        f"Redis per job: {rd['redis_commands_per_job']:.2f} commands,"
        f" {rd['redis_us_per_job']:.1f} us CPU"
    )
    pp, sp = r["redis.push_path"], r["sqlite.push_path"]
    for label, key in (("one raw producer", "push_1"), ("16 raw producers", "push_16")):
        lines.append(
            f"server CPU per PUSH, {label}: Redis {pp[f'backend.{key}_cpu_us']:.0f} us,"
            f" SQLite fsync {sp[f'fsync.{key}_cpu_us']:.0f} us, os {sp[f'os.{key}_cpu_us']:.0f} us"
        )
    return "\n".join(lines)


def _model(rd: dict[str, Any], sq: dict[str, Any]) -> list[str]:
    server, redis_us, worker = (
        rd["server_us_per_job"],
        rd["redis_us_per_job"],
        rd["worker_us_per_job"],
    )
    lines = [
        "### N servers on one Redis: the model",
        "",
        f"Measured CPU per job of each part, in the `costs` scenario above ({rd['n']:,} jobs",
        "pushed with PUSHB, drained by two `werk worker` processes; `/proc/<pid>/stat` for the",
        "server and the workers, `INFO cpu` of Redis' main thread for Redis):",
        "",
        f"- one Werk server: {server:.0f} us per job (push + fetch + ack), on its one event"
        f" loop: at most {_f(1e6 / server)} jobs/s per server core;",
        f"- Redis: {redis_us:.1f} us per job on its one script thread: at most"
        f" {_f(1e6 / redis_us)} jobs/s for all servers together;",
        f"- the workers: {worker:.0f} us per job, on cores of their own beside each server (not"
        " the bound in the model).",
        "",
        "The model gives each server a core of its own and predicts `min(N x server, Redis)`:",
        "",
        "| servers | predicted drain, jobs/s | bound |",
        "|---|---|---|",
    ]
    for n in (1, 2, 4, 8):
        value = rd[f"model_{n}_servers"]
        bound = "Redis" if value < n * 1e6 / server - 1 else "the servers"
        lines.append(f"| {n} | {_f(value)} | {bound} |")
    lines += [
        "",
        "Where the numbers come from, and what they leave out: the CPU per job was measured",
        "on this 2-core machine with server, workers and Redis sharing both cores (and other",
        "work), which inflates it through cache and scheduler contention, so on dedicated",
        "cores each part should do at least this well. The model leaves out the network",
        "between machines (each server's batches already amortise the round trips) and",
        "Redis' own replication. For comparison, one server on SQLite used",
        f"{sq['server_us_per_job']:.0f} us per job in the same run; it cannot be shared by a"
        " second server.",
    ]
    return lines


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results-redis.json")
    sys.stdout.write(render(json.loads(path.read_text())))
