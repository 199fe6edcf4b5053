"""``werk restore BACKUP``: put a verified backup in place of the embedded store.

The backup is checked first (manifest, SHA-256, ``PRAGMA integrity_check``, Werk identity,
schema version). Restoring refuses while a server holds the data directory, and refuses to
replace a store that holds data unless ``--force`` is given; the replaced store is kept
beside the new one. ``--dry-run`` checks and reports, and changes nothing; it takes no lock,
so it runs while the server serves.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from werk.cli.backup import add_store_options, refuse_redis, store_config
from werk.cli.progress import Progress, counts_text, duration_text
from werk.errors import StorageError
from werk.paths import DirectoryError, make_dir
from werk.server.settings import ConfigError
from werk.storage.sqlite import schema
from werk.storage.sqlite.backup import BackupError, is_empty, restore, store_counts, verify


def register(subparsers: Any) -> None:
    """Add the ``restore`` subcommand."""
    parser = subparsers.add_parser(
        "restore",
        help="restore the embedded store from a backup (the server must be stopped)",
        description="Check a backup made by `werk backup` (manifest, SHA-256, SQLite"
        " integrity, schema version) and put it in place of the embedded store. Refuses"
        " while a server holds the data directory, and refuses to replace a store that"
        " holds jobs unless --force is given (the replaced file is kept beside it)."
        " Progress shows on a terminal; the last line sums up.",
    )
    parser.add_argument("backup", help="the backup file (its .json manifest must be beside it)")
    add_store_options(parser, "restore")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace a store that holds data (default: refuse; the old file is kept)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check the backup and report what a restore would need; change nothing (runs"
        " while the server runs)",
    )
    parser.set_defaults(func=run)


def _fail(message: str, code: int = 1) -> int:
    print(f"werk restore: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    """Run ``werk restore``."""
    try:
        config = store_config(args)
    except ConfigError as exc:
        return _fail(str(exc), 2)
    if refuse_redis(config, "restore"):
        return 2
    source = Path(args.backup).expanduser()
    data_dir = config.data_dir
    progress = Progress("werk restore")
    try:
        manifest = verify(source, progress.step)
    except BackupError as exc:
        progress.clear()
        return _fail(f"refusing: {exc}")
    if args.dry_run:
        return _dry_run(args, source, data_dir, manifest.counts, progress)
    lock = schema.DirectoryLock(data_dir / schema.LOCK_NAME)
    try:
        make_dir(data_dir, "data directory")
        lock.acquire()
    except DirectoryError as exc:
        return _fail(str(exc))
    except StorageError as exc:
        return _fail(f"refusing: {exc}; stop the server first")
    try:
        return _restore_locked(args, source, data_dir, manifest.counts, progress)
    except BackupError as exc:
        progress.clear()
        return _fail(str(exc))
    finally:
        lock.release()


def _restore_locked(
    args: argparse.Namespace,
    source: Path,
    data_dir: Path,
    counts: dict[str, int],
    progress: Progress,
) -> int:
    report = _report(args, source, data_dir, counts, progress)
    current = report["current_counts"]
    if not is_empty(current) and not args.force:
        _print(args, {**report, "restored": False})
        return _fail(
            f"refusing: the store in {data_dir} holds data ({counts_text(current)});"
            " pass --force to replace it (the old file is kept beside it)"
        )
    kept = restore(source, data_dir, progress.step)
    progress.clear()
    report["seconds"] = round(progress.elapsed, 3)
    _print(
        args, {**report, "restored": True, "replaced_store_kept_at": str(kept) if kept else None}
    )
    return 0


def _report(
    args: argparse.Namespace,
    source: Path,
    data_dir: Path,
    counts: dict[str, int],
    progress: Progress,
) -> dict[str, Any]:
    """Start the report: the backup's counts and the current store's (``None``: no data).

    Raises:
        BackupError: the current store cannot be read.
    """
    current = store_counts(data_dir)
    progress.clear()
    return {
        "backup": str(source),
        "data_dir": str(data_dir),
        "backup_counts": counts,
        "current_counts": current,
        "dry_run": args.dry_run,
    }


def _dry_run(
    args: argparse.Namespace,
    source: Path,
    data_dir: Path,
    counts: dict[str, int],
    progress: Progress,
) -> int:
    """Check and report without the directory lock, so that it also runs while the server
    serves (the check before stopping it): exit 0 when the backup is intact, and name what
    a real restore would still need (a stopped server, ``--force``)."""
    try:
        report = _report(args, source, data_dir, counts, progress)
    except BackupError as exc:
        progress.clear()
        return _fail(str(exc))
    _print(args, {**report, "restored": False})
    needs = []
    if _in_use(data_dir):
        needs.append("stop the server that holds the data directory")
    if not is_empty(report["current_counts"]) and not args.force:
        needs.append("pass --force to replace the store's data (the old file is kept)")
    advice = f"; to restore: {' and '.join(needs)}" if needs else ""
    print(f"dry run: the backup is intact; nothing was changed{advice}", file=sys.stderr)
    return 0


def _in_use(data_dir: Path) -> bool:
    """Return True when a server holds ``data_dir`` (its lock is taken and dropped at once;
    a directory without a lock file is not created or touched)."""
    if not (data_dir / schema.LOCK_NAME).exists():
        return False
    lock = schema.DirectoryLock(data_dir / schema.LOCK_NAME)
    try:
        lock.acquire()
    except StorageError:
        return True
    lock.release()
    return False


def _print(args: argparse.Namespace, report: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(report))
        return
    backup, store = report["backup"], report["data_dir"]
    if not report["restored"]:
        current = counts_text(report["current_counts"]) or "empty"
        print(
            f"backup {backup} is intact ({counts_text(report['backup_counts'])}); store {store}:"
            f" {current}; nothing was changed"
        )
        return
    line = f"restored {backup} into {store} in {duration_text(report['seconds'])}"
    line += f" ({counts_text(report['backup_counts'])})"
    if report.get("replaced_store_kept_at"):
        line += f"; the replaced store is kept at {report['replaced_store_kept_at']}"
    print(line)
