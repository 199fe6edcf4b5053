"""Periodic backups of the embedded store, run by the server (``[backup] every/keep/dir``).

Every ``every`` seconds a backup (:func:`werk.storage.sqlite.backup.backup`, in a thread: it never
blocks the event loop) goes to ``dir`` (default ``<data_dir>/backups``) and all but the
newest ``keep`` are deleted. The settings are read on each round, so SIGHUP changes them.
Failures are logged and counted (``/metrics``); the loop carries on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from werk.errors import StorageError
from werk.paths import make_dir

if TYPE_CHECKING:
    from werk.server.state import ServerState

log = logging.getLogger("werk.backup")

IDLE_CHECK = 5.0
"""How often a server with backups off looks whether a reload turned them on."""


class PeriodicBackups:
    """The backup loop and its counters."""

    def __init__(self, server: ServerState) -> None:
        self.server = server
        self.taken = 0
        self.failures = 0
        self.last_success: float | None = None
        self.last_duration = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def supported(self) -> bool:
        """Whether the store is the embedded SQLite one (Redis has its own persistence)."""
        from werk.storage.sqlite import SqliteStore

        return isinstance(self.server.store, SqliteStore)

    def start(self) -> None:
        """Start the loop (a no-op for stores other than SQLite)."""
        if self.supported:
            self._task = asyncio.create_task(self._run(), name="werk-backups")

    async def stop(self) -> None:
        """Stop the loop; a backup in progress is abandoned (its partial file removed)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        next_at = 0.0
        while True:
            every = self.server.config.backup_every
            if not every:
                next_at = 0.0
                await asyncio.sleep(IDLE_CHECK)
                continue
            now = time.time()
            next_at = min(next_at, now + every) if next_at else now + every
            if now < next_at:
                await asyncio.sleep(min(next_at - now, IDLE_CHECK))
                continue
            await self.run_once()
            next_at = time.time() + every

    async def run_once(self) -> None:
        """Take one backup now and apply the retention; never raises."""
        from werk.storage.sqlite.backup import backup, prune

        config = self.server.config
        directory = config.backup_dir or config.data_dir / "backups"
        started = time.monotonic()
        try:
            make_dir(directory, "backup directory")
            path, manifest = await asyncio.to_thread(backup, config.data_dir, directory)
            removed = await asyncio.to_thread(prune, directory, config.backup_keep)
        except (StorageError, OSError) as exc:
            self.failures += 1
            log.error("periodic backup failed: %s", exc)
            return
        self.taken += 1
        self.last_success = time.time()
        self.last_duration = time.monotonic() - started
        log.info(
            "backup %s (%d bytes, %.2fs); %d old removed",
            path,
            manifest.size,
            self.last_duration,
            len(removed),
        )
