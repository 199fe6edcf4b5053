"""The ``werk`` entry point: global options and the subcommand registry.

Each subcommand lives in its own module of this package, exposing
``register(subparsers) -> None``; the parser it adds sets ``func`` to a function taking the
parsed arguments and returning the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from werk import __version__

SUBCOMMANDS = ("server", "worker", "backup", "restore", "bench")


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="werk",
        description="Werk, a background job server that speaks the Faktory work protocol.",
        epilog="`werk COMMAND --help` describes each command and its flags.",
    )
    parser.add_argument(
        "--version", action="version", version=f"werk {__version__}", help="print the version"
    )
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands", help="one of the commands below"
    )
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"werk.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"werk.cli.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``werk`` command line and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    status: int = func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
