"""``werk backup``: a consistent copy of the embedded store, safe while the server runs.

The data directory comes from the same configuration as ``werk server`` (``-d``, ``-c``,
``-e``, ``WERK_DATA_DIR``, ``conf.d``). With a Redis store there is nothing to copy here:
Redis persistence (RDB/AOF) and replication are the tools, and the command says so.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from werk.cli.progress import Progress, counts_text, duration_text, size_text
from werk.server.config import ENVIRONMENTS, ServerConfig
from werk.server.settings import ConfigError, load_config
from werk.storage.sqlite.backup import BackupError, backup

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def add_store_options(parser: argparse.ArgumentParser, action: str) -> None:
    """Add the options that locate the store as ``werk server`` would (shared with
    ``werk restore``; ``action`` is the command's verb, for the help texts)."""
    add = parser.add_argument
    add(
        "-d",
        "--data-dir",
        help="data directory of the embedded store (default $WERK_DATA_DIR, [storage] dir,"
        " else ~/.werk/db, or /var/lib/werk/db outside development)",
    )
    add("-c", "--config-dir", help="configuration directory (default ~/.werk, or /etc/werk)")
    add(
        "-e",
        "--environment",
        choices=ENVIRONMENTS,
        help="the environment whose default directories apply (default $WERK_ENV, else"
        " development)",
    )
    add(
        "--storage",
        help=f"the server's storage URL, to refuse clearly when it is Redis (Werk {action}s"
        " only its embedded store; default $WERK_STORAGE or [storage] url)",
    )
    add("--json", action="store_true", help="print the result as one JSON object")


def register(subparsers: Any) -> None:
    """Add the ``backup`` subcommand."""
    parser = subparsers.add_parser(
        "backup",
        help="back up the embedded store (the server may keep running)",
        description="Copy the embedded SQLite store into one consistent file, with a"
        " <file>.json manifest (SHA-256, size, counts) beside it, while the server keeps"
        " serving. Restore it with `werk restore FILE`. Progress shows on a terminal; the"
        " last line sums up.",
    )
    add_store_options(parser, "back")
    parser.add_argument(
        "-o",
        "--output",
        default=".",
        help="a directory (a werk-<UTC time>.sqlite3 file is written there; a path ending in /"
        " is a directory, made if missing) or a file path (default: the current directory)",
    )
    parser.set_defaults(func=run)


def store_config(args: argparse.Namespace) -> ServerConfig:
    """Return the configuration that locates the store, as ``werk server`` would build it.

    Raises:
        ConfigError: the configuration is invalid.
    """
    flags = {
        "data_dir": args.data_dir,
        "config_dir": args.config_dir,
        "environment": args.environment,
        "storage_url": args.storage,
    }
    return load_config(flags, require_password=False)


def refuse_redis(config: ServerConfig, action: str) -> bool:
    """Explain, and return True, when the store is Redis or PostgreSQL."""
    url = config.storage_url or ""
    if url.startswith(("postgresql://", "postgres://")):
        print(
            f"werk {action}: the store is PostgreSQL; Werk only {action}s its embedded SQLite"
            " store. Back up Werk's schema with PostgreSQL's own tools (pg_dump -n werk, base"
            " backups with WAL archiving, or your provider's snapshots).",
            file=sys.stderr,
        )
        return True
    if not url.startswith(REDIS_SCHEMES):
        return False
    print(
        f"werk {action}: the store is Redis ({url.split('@')[-1]}); Werk only"
        f" {action}s its embedded SQLite store. Use Redis persistence (RDB snapshots or AOF,"
        " e.g. copy the RDB file after BGSAVE) and replication for a Redis store.",
        file=sys.stderr,
    )
    return True


def run(args: argparse.Namespace) -> int:
    """Run ``werk backup``."""
    try:
        config = store_config(args)
    except ConfigError as exc:
        print(f"werk backup: {exc}", file=sys.stderr)
        return 2
    if refuse_redis(config, "backup"):
        return 2
    output = Path(args.output).expanduser()
    if args.output.endswith(("/", os.sep)):
        # A directory, even one that does not exist yet (``Path`` drops the trailing slash).
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"werk backup: cannot create the directory {output}: {exc}", file=sys.stderr)
            return 1
    progress = Progress("werk backup")
    try:
        path, manifest = backup(config.data_dir, output, progress.step)
    except BackupError as exc:
        progress.clear()
        print(f"werk backup: {exc}", file=sys.stderr)
        return 1
    progress.clear()
    if args.json:
        print(json.dumps({"path": str(path), **asdict(manifest)}))
    else:
        print(
            f"backup written to {path}: {size_text(manifest.size)} in"
            f" {duration_text(progress.elapsed)} ({counts_text(manifest.counts)};"
            f" sha256 {manifest.sha256})"
        )
    return 0
