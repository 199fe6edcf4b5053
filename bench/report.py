"""Render bench/results.json (written by bench/run_all.py) as docs/benchmarks.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RERUN = """<!-- not-run: a benchmark run (minutes; bench/run_all.py) -->
```sh
make install
python3 -m venv bench/.venv-peers
bench/.venv-peers/bin/pip install -r bench/requirements-peers.txt
.venv/bin/python bench/run_all.py        # everything below, about 15 minutes
.venv/bin/werk bench drain --storage sqlite   # one scenario
```"""


def _f(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _target(ok: bool) -> str:
    return "met" if ok else "**missed**"


def render(r: dict[str, Any]) -> str:
    """Return the Markdown page for a results dictionary."""
    peers = {k.split(".", 1)[1]: v["jobs_per_s"] for k, v in r.items() if k.startswith("peer.")}
    best_peer, best_rate = max(peers.items(), key=lambda kv: kv[1]) if peers else ("none", 0.0)
    lines = [
        "# Benchmarks",
        "",
        f"Measured {r['when']} on {r['machine']}: clients, workers and server on one machine,",
        "all traffic on 127.0.0.1. Figures are medians of the rounds shown; the machine is",
        "noisy, so compare ratios within one run rather than absolute numbers across runs.",
        "",
        "## Rerun",
        "",
        RERUN,
        "",
        "## Drain: N no-op jobs, two worker processes",
        "",
        "| system | storage | jobs/s | vs best peer |",
        "|---|---|---|---|",
    ]
    for key in ("sqlite", "redis"):
        label = "SQLite, fsync on every push" if key == "sqlite" else "Redis"
        for scenario, kind in (("drain", "`def` no-op"), ("drain_async", "`async def` no-op")):
            rate = r[f"{key}.{scenario}"]["jobs_per_s"]
            ratio = rate / best_rate if best_rate else 0
            lines.append(f"| Werk, {kind} | {label} | {_f(rate)} | {ratio:.2f}x |")
    if "redis.drain_two_servers" in r:
        rate = r["redis.drain_two_servers"]["jobs_per_s"]
        ratio = rate / best_rate if best_rate else 0
        lines.append(
            f"| Werk, two servers | Redis, one worker process each | {_f(rate)} | {ratio:.2f}x |"
        )
    for name, rate in sorted(peers.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | Redis (no fsync) | {_f(rate)} | {rate / best_rate:.2f}x |")
    n = r["sqlite.drain"]["n"]
    lines += ["", f"N = {n:,}; rounds = {r['sqlite.drain']['rounds']}.", ""]
    lines += _werk_table(r)
    lines += _targets(r, best_peer, best_rate)
    analysis = Path(__file__).with_name("analysis.md")
    if analysis.exists():
        lines += ["", analysis.read_text().rstrip()]
    redis = Path(__file__).with_name("redis-scaleout.md")  # bench/redis_scaleout.py
    if redis.exists():
        start, end = "<!-- redis-scaleout:start -->", "<!-- redis-scaleout:end -->"
        lines += ["", start, redis.read_text().rstrip(), end]
    return "\n".join(lines) + "\n"


def _werk_table(r: dict[str, Any]) -> list[str]:
    rows = ["## Werk's scenarios", "", "| scenario | SQLite | Redis |", "|---|---|---|"]
    for scenario, field, unit in (
        ("push_bulk", "jobs_per_s", "jobs/s (PUSHB of 1,000)"),
        ("push_single", "jobs_per_s", "jobs/s (one PUSH at a time)"),
        ("latency", "p50_ms", "push-to-start p50, ms"),
        ("latency", "p99_ms", "push-to-start p99, ms"),
        ("scheduled", "p50_ms", "scheduled lateness p50, ms"),
        ("scheduled", "p99_ms", "scheduled lateness p99, ms"),
    ):
        digits = 0 if field == "jobs_per_s" else 2
        s, d = r[f"sqlite.{scenario}"][field], r[f"redis.{scenario}"][field]
        rows.append(f"| {unit} | {_f(s, digits)} | {_f(d, digits)} |")
    depth, mem = r["sqlite.depth"], r["sqlite.memory"]
    rows += [
        "",
        f"Depth (SQLite, {depth['n']:,} jobs queued vs 1,000): push {depth['push_us_shallow']:.0f}"
        f" -> {depth['push_us_deep']:.0f} us (ratio {depth['push_ratio']:.2f}); fetch+ack"
        f" {depth['fetch_us_shallow']:.0f} -> {depth['fetch_us_deep']:.0f} us (ratio"
        f" {depth['fetch_ratio']:.2f}).",
        "",
        f"Memory (SQLite): RSS {mem['rss_idle_mb']:.0f} MB idle, {mem['rss_full_mb']:.0f} MB"
        f" with {mem['n']:,} jobs queued.",
        "",
    ]
    return rows


def _targets(r: dict[str, Any], best_peer: str, best_rate: float) -> list[str]:
    drain = r["sqlite.drain"]["jobs_per_s"]
    drain_async = r["sqlite.drain_async"]["jobs_per_s"]
    checks = [
        (
            "drain >= 2x best peer, fsync on (`def` no-op)",
            drain >= 2 * best_rate,
            f"{drain / best_rate:.2f}x {best_peer}" if best_rate else "no peer",
        ),
        (
            "drain >= 2x best peer, fsync on (`async def` no-op)",
            drain_async >= 2 * best_rate,
            f"{drain_async / best_rate:.2f}x {best_peer}" if best_rate else "no peer",
        ),
        (
            "PUSHB >= 50,000 jobs/s",
            r["sqlite.push_bulk"]["jobs_per_s"] >= 50_000,
            _f(r["sqlite.push_bulk"]["jobs_per_s"]),
        ),
        (
            "single PUSH >= 15,000 jobs/s",
            r["sqlite.push_single"]["jobs_per_s"] >= 15_000,
            _f(r["sqlite.push_single"]["jobs_per_s"]),
        ),
        (
            "latency p50 <= 1 ms",
            r["sqlite.latency"]["p50_ms"] <= 1,
            f"{r['sqlite.latency']['p50_ms']:.2f} ms",
        ),
        (
            "latency p99 <= 10 ms",
            r["sqlite.latency"]["p99_ms"] <= 10,
            f"{r['sqlite.latency']['p99_ms']:.2f} ms",
        ),
        (
            "scheduled p99 <= 100 ms",
            r["sqlite.scheduled"]["p99_ms"] <= 100,
            f"{r['sqlite.scheduled']['p99_ms']:.1f} ms",
        ),
        (
            "depth ratio <= 1.3 (push)",
            r["sqlite.depth"]["push_ratio"] <= 1.3,
            f"{r['sqlite.depth']['push_ratio']:.2f}",
        ),
        (
            "depth ratio <= 1.3 (fetch)",
            r["sqlite.depth"]["fetch_ratio"] <= 1.3,
            f"{r['sqlite.depth']['fetch_ratio']:.2f}",
        ),
        (
            "RSS <= 200 MB with 1,000,000 queued",
            r["sqlite.memory"]["rss_full_mb"] <= 200,
            f"{r['sqlite.memory']['rss_full_mb']:.0f} MB",
        ),
    ]
    rows = ["## Targets", "", "| target | measured | status |", "|---|---|---|"]
    rows += [f"| {name} | {value} | {_target(ok)} |" for name, ok, value in checks]
    return rows + [""]


if __name__ == "__main__":
    results = json.loads(
        Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results.json").read_text()
    )
    sys.stdout.write(render(results))
