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
from werk.errors import StorageError
from werk.paths import DirectoryError, make_dir
from werk.server.config import ENVIRONMENTS, ServerConfig
from werk.server.settings import ConfigError, load_config
from werk.storage.sqlite.backup import BackupError, backup

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
VERBS = {"backup": "backs up", "restore": "restores"}
"""Each command's verb in the third person (``Werk only backs up ...``)."""


def add_store_options(parser: argparse.ArgumentParser, action: str) -> None:
    """Add the options that locate the store as ``werk server`` would (shared with
    ``werk restore``; ``action`` is the command, ``backup`` or ``restore``)."""
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
        help="the server's storage URL, to refuse clearly when it is Redis or PostgreSQL (Werk"
        f" {VERBS[action]} only its embedded store; default $WERK_STORAGE or [storage] url)",
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
    add_store_options(parser, "backup")
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


ADVICE = {
    ("postgres", "backup"): "Back up Werk's schema with PostgreSQL's own tools (pg_dump -n"
    " {schema}, base backups with WAL archiving, or your provider's snapshots).",
    ("postgres", "restore"): "Restore Werk's schema with PostgreSQL's own tools (pg_restore or"
    " psql from a pg_dump -n {schema}, or point-in-time recovery from a base backup and its"
    " WAL), with the Werk servers stopped.",
    ("redis", "backup"): "Use Redis persistence and replication: BGSAVE, wait until"
    " rdb_bgsave_in_progress is 0 (INFO persistence), copy the dump.rdb of Redis' dir.",
    ("redis", "restore"): "Restore a Redis store with Redis's own tools, with the Werk servers"
    " stopped: stop Redis, move its appendonlydir aside (with AOF on, Redis loads the AOF and"
    " ignores dump.rdb), put the saved dump.rdb in its dir, start it with --appendonly no,"
    " run CONFIG SET appendonly yes, wait until aof_rewrite_in_progress is 0, then restart it"
    " as usual (docs/operations.md); or promote a replica.",
}
"""What to use instead, by store and command."""


def refuse_redis(config: ServerConfig, action: str) -> bool:
    """Explain, and return True, when the store is Redis or PostgreSQL."""
    url = config.storage_url or ""
    schema = ""
    if url.startswith(("postgresql://", "postgres://")):
        kind, name = "postgres", "PostgreSQL"
        schema = postgres_schema(url)
    elif url.startswith(REDIS_SCHEMES):
        kind, name = "redis", f"Redis ({url.split('@')[-1]})"
    else:
        return False
    print(
        f"werk {action}: the store is {name}; Werk only {VERBS[action]} its embedded SQLite"
        f" store. {ADVICE[kind, action].format(schema=schema)}",
        file=sys.stderr,
    )
    return True


def postgres_schema(url: str) -> str:
    """The schema a PostgreSQL URL names (``?schema=``), or the default when it is bad."""
    from werk.storage.postgres.schema import DEFAULT_SCHEMA
    from werk.storage.postgres.url import parse_url

    try:
        return parse_url(url).schema
    except StorageError:  # a bad option: the server names it; the advice stays general
        return DEFAULT_SCHEMA


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
            make_dir(output, "directory")
        except DirectoryError as exc:
            print(f"werk backup: {exc}", file=sys.stderr)
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
