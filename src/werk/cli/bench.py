"""``werk bench``: run Werk's benchmark scenarios and print medians as JSON lines.

Each scenario starts its own server (embedded SQLite with fsync on, or a Redis URL) and
worker processes. ``bench/run.sh`` runs everything, peers included, and writes
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``bench`` subcommand."""
    from werk.benchmarks.scenarios import SCENARIOS

    parser = subparsers.add_parser(
        "bench",
        help="run the benchmark scenarios",
        description="Measure push, drain, latency, scheduling precision, depth and memory.",
    )
    parser.add_argument(
        "scenarios", nargs="*", choices=[*SCENARIOS, []], help="scenarios to run (default: all)"
    )
    parser.add_argument(
        "--storage",
        default="sqlite",
        help="sqlite (default) or a Redis URL such as redis://127.0.0.1:6379/3",
    )
    parser.add_argument("-n", type=int, default=None, help="jobs per round (default per scenario)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per scenario (median)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the chosen scenarios and print one JSON line each."""
    from werk.benchmarks import scenarios

    chosen = args.scenarios or [
        name
        for name in scenarios.SCENARIOS
        if not (args.storage == "sqlite" and name == "drain_two_servers")
    ]
    for name in chosen:
        n = args.n or scenarios.DEFAULT_N[name]
        result = scenarios.run(name, args.storage, n, args.rounds)
        line = {"scenario": name, "storage": args.storage, "n": n, **result}
        print(json.dumps(line), flush=True)
    sys.stdout.flush()
    return 0
