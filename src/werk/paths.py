"""Directories the commands create, with one clear line when they cannot.

``werk server -d``, ``werk backup -o``, ``werk restore -d`` and the periodic backups all
create their directory here, so a path through a file, under a read-only or virtual file
system, or without permission is told the same way everywhere: what the directory is for,
the path, and why (``afile is a file, not a directory``), instead of a traceback or a bare
``[Errno 17] File exists: 'afile'``.
"""

from __future__ import annotations

from pathlib import Path

from werk.errors import WerkError


class DirectoryError(WerkError, OSError):
    """A directory could not be created or used; the message names it and says why.

    An :class:`OSError` too, so callers that already handle ``OSError`` keep working.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _blocking_file(path: Path) -> Path | None:
    """Return the nearest of ``path`` and its parents that exists but is not a directory."""
    for part in (path, *path.parents):
        if part.exists() or part.is_symlink():
            return None if part.is_dir() else part
    return None


def make_dir(path: Path, what: str) -> None:
    """Create ``path`` and its parents if missing (``mkdir -p``).

    Args:
        path: the directory.
        what: what it is for, for the message (``"data directory"``).

    Raises:
        DirectoryError: ``cannot create the <what> <path>: <why>``, where why names a file
            in the way, or gives the system's reason (permission, read-only, no such
            directory).
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocking = _blocking_file(path)
        why = (
            f"{blocking} is a file, not a directory"
            if blocking is not None
            else exc.strerror or str(exc)
        )
        raise DirectoryError(f"cannot create the {what} {path}: {why}") from exc
