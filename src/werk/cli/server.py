"""``werk server``: build the configuration, run the server, own the signals.

SIGTERM and SIGINT stop the server gracefully; a second signal forces the exit.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from typing import Any

from werk.errors import StorageError
from werk.server.config import (
    DEFAULT_MAX_LINE,
    ENVIRONMENTS,
    ServerConfig,
    default_data_dir,
    parse_binding,
    password_from_env,
)

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}


def register(subparsers: Any) -> None:
    """Add the ``server`` subcommand."""
    parser = subparsers.add_parser("server", help="run the Werk server")
    parser.add_argument(
        "-b",
        "--binding",
        default="localhost:7419",
        help="host:port for the work protocol (default localhost:7419)",
    )
    parser.add_argument(
        "-w",
        "--web-binding",
        default="localhost:7420",
        help="host:port for the web UI; :0 disables it (default localhost:7420)",
    )
    parser.add_argument(
        "-d",
        "--data-dir",
        default=None,
        help="data directory of the embedded store (default ~/.werk/db)",
    )
    parser.add_argument(
        "-e",
        "--environment",
        choices=ENVIRONMENTS,
        default=os.environ.get("WERK_ENV") or os.environ.get("FAKTORY_ENV") or "development",
    )
    parser.add_argument("-l", "--log-level", choices=sorted(LEVELS), default="info")
    parser.add_argument(
        "--storage",
        default=os.environ.get("WERK_STORAGE"),
        help="storage URL, e.g. redis://host:6379/0 (default: embedded SQLite)",
    )
    parser.add_argument(
        "--max-line",
        type=int,
        default=DEFAULT_MAX_LINE,
        help="longest command line accepted, in bytes",
    )
    parser.add_argument("--max-connections", type=int, default=2000)
    parser.set_defaults(func=run)


class _Formatter(logging.Formatter):
    """Faktory's log line: level letter, UTC time with milliseconds, message."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = f"{record.levelname[0]} {stamp}.{int(record.msecs):03d}Z {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(level: str) -> None:
    """Log to stderr in Faktory's format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])


def build_config(args: argparse.Namespace) -> ServerConfig:
    """Turn parsed flags and the environment into a :class:`ServerConfig`."""
    web = None if args.web_binding in (":0", "0") else parse_binding(args.web_binding)
    data_dir = args.data_dir or default_data_dir(args.environment)
    from pathlib import Path

    return ServerConfig(
        binding=parse_binding(args.binding),
        web_binding=web,
        data_dir=Path(data_dir).expanduser(),
        storage_url=args.storage or os.environ.get("REDIS_URL") or None,
        environment=args.environment,
        password=password_from_env(),
        max_line=args.max_line,
        max_connections=args.max_connections,
    )


async def serve(config: ServerConfig) -> None:
    """Run a server until SIGTERM or SIGINT, then stop it gracefully."""
    from werk.server.server import Server

    server = Server(config)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():
            logging.getLogger("werk").warning("second signal: exiting now")
            os._exit(1)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    await server.start()
    await stop.wait()
    await server.stop()


def run(args: argparse.Namespace) -> int:
    """Run ``werk server``."""
    setup_logging(args.log_level)
    config = build_config(args)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        runner(serve(config))
    except StorageError as exc:
        logging.getLogger("werk").error("cannot start: %s", exc)
        return 1
    except OSError as exc:
        logging.getLogger("werk").error("cannot start: %s", exc)
        return 1
    return 0
