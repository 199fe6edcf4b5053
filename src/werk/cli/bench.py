"""``werk bench``: run Werk's benchmark scenarios and print medians as JSON lines.

Each scenario starts its own server (embedded SQLite with fsync on, or a Redis URL) and
worker processes. ``bench/run_all.py`` runs everything, peers included, and writes
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from werk.cli.argtypes import positive_int
from werk.cli.progress import Progress, duration_text


def scenario_name(text: str) -> str:
    """Accept a scenario name (argparse ``type``), naming the valid ones otherwise."""
    from werk.benchmarks.scenarios import SCENARIOS

    if text not in SCENARIOS:
        raise argparse.ArgumentTypeError(
            f"unknown scenario {text!r}: choose from {', '.join(SCENARIOS)}"
        )
    return text


def register(subparsers: Any) -> None:
    """Add the ``bench`` subcommand."""
    from werk.benchmarks.scenarios import DEFAULT_N, SCENARIOS

    parser = subparsers.add_parser(
        "bench",
        help="run the benchmark scenarios (starts its own servers; takes minutes)",
        description="Measure push, drain, latency, scheduling precision, queue depth and"
        " memory. Each scenario starts its own `werk server` (on a free port, in a temporary"
        " data directory, or on the Redis of --storage) and its own worker processes; a"
        " server you run is not touched. With the defaults every scenario runs 3 rounds and"
        " the whole run takes several minutes (depth and memory queue 1,000,000 jobs);"
        " `-n 1000 --rounds 1` is a smoke run of under a minute. One JSON line per"
        " scenario goes to stdout (medians of the rounds); progress shows on a terminal.",
        epilog="scenarios (default jobs per round): "
        + ", ".join(f"{name} ({DEFAULT_N[name]:,})" for name in SCENARIOS)
        + ". drain_two_servers needs a Redis or PostgreSQL --storage.",
    )
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        type=scenario_name,
        help="scenarios to run (default: all; drain_two_servers only with Redis or PostgreSQL)",
    )
    parser.add_argument(
        "--storage",
        default="sqlite",
        help="sqlite (default: the embedded store, fsync on), a Redis URL such as"
        " redis://127.0.0.1:6379/3 (use a database of its own) or a PostgreSQL URL"
        " (each server set gets a schema of its own, dropped after)",
    )
    parser.add_argument(
        "-n", type=positive_int, default=None, help="jobs per round (default: per scenario, below)"
    )
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=3,
        help="rounds per scenario, reported as medians (default 3)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the chosen scenarios and print one JSON line each, then a summary on stderr."""
    from werk.benchmarks import scenarios
    from werk.storage import StorageURLError, check_url

    if args.storage != "sqlite":
        try:
            check_url(args.storage)
        except StorageURLError as exc:
            print(f"werk bench: {exc}", file=sys.stderr)
            return 2
    chosen = args.scenarios or [
        name
        for name in scenarios.SCENARIOS
        if not (args.storage == "sqlite" and name == "drain_two_servers")
    ]
    progress = Progress("werk bench")
    for index, name in enumerate(chosen, 1):
        n = scenarios.DEFAULT_N[name] if args.n is None else args.n

        def on_round(number: int, name: str = name, index: int = index, n: int = n) -> None:
            progress.show(
                f"scenario {index}/{len(chosen)} {name}, round {number}/{args.rounds}"
                f" ({n:,} jobs, {duration_text(progress.elapsed)} so far)",
                force=True,
            )

        result = scenarios.run(name, args.storage, n, args.rounds, on_round)
        progress.clear()
        line = {"scenario": name, "storage": args.storage, "n": n, **result}
        print(json.dumps(line), flush=True)
    progress.clear()
    print(
        f"werk bench: {len(chosen)} scenarios x {args.rounds} rounds on {args.storage}"
        f" in {duration_text(progress.elapsed)}",
        file=sys.stderr,
    )
    return 0
