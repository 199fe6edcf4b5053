"""The cron scheduler task: wakes for the next tick of any ``[[cron]]`` entry and fires it.

The rules (parsing, exactly-once firing, history) live in :mod:`werk.manager.cron`; this
module owns the asyncio loop, its start and stop with the server, and SIGHUP reloads. It
sleeps until the next tick but at most :data:`MAX_SLEEP`, so a reload or a clock change
is noticed quickly; every server runs the loop and the store decides who fires.
:func:`check_settings` and :func:`attach` tie cron and throttles to the server's startup
checks and SIGHUP reloads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from werk.manager.cron import Cron, CronConfigError, parse_cron
from werk.manager.manager import Manager
from werk.manager.throttles import (
    ThrottleConfigError,
    ThrottleMiddleware,
    parse_throttles,
    throttles_of,
)
from werk.server.config import ServerConfig
from werk.server.settings import ConfigError

if TYPE_CHECKING:
    from werk.server.state import ServerState

log = logging.getLogger("werk.cron")

MAX_SLEEP: Final = 1.0


class CronScheduler:
    """Runs the cron entries of a server's settings.

    Args:
        manager: the server's manager (pushes jobs, provides the store).
        settings: the parsed configuration; its ``[[cron]]`` entries are validated now.
        clock: Unix seconds; defaults to the manager's clock (tests pass a controlled one).

    Raises:
        CronConfigError: an entry is invalid (the message names it).
    """

    def __init__(
        self,
        manager: Manager,
        settings: dict[str, Any],
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.clock = clock or manager.clock
        self.cron = Cron(manager, parse_cron(settings))
        self.errors = 0
        self.throttles: ThrottleMiddleware | None = None
        """The server's throttles, whose count :meth:`loaded` reports beside cron's."""
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    def start(self) -> None:
        """Start the loop (nothing runs when there are no entries until a reload adds one)."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._loop(), name="werk-cron")

    async def stop(self) -> None:
        """Stop the loop and wait for it.

        Besides the cancellation, a flag and the wake-up event end the loop: a store driver
        that turns a cancelled query into an ordinary error (which a tick logs and survives)
        must not leave the loop running, and ``stop`` waiting for it, forever.
        """
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            self._wake.set()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def reload(self, settings: dict[str, Any]) -> None:
        """Replace the entries from reloaded settings (SIGHUP).

        Raises:
            CronConfigError: an entry is invalid; the running entries stay unchanged.
        """
        entries = parse_cron(settings)
        self.cron.replace(entries)
        self._wake.set()

    def loaded(self, *, configured_only: bool = False) -> list[str]:
        """``cron: N entries loaded`` and ``throttles: N loaded (queues)``, the lines a
        SIGHUP logs; ``configured_only`` (the start) leaves out what has none."""
        lines = []
        if self.cron.entries or not configured_only:
            lines.append(f"cron: {len(self.cron.entries)} entries loaded")
        names = sorted(self.throttles.throttles) if self.throttles is not None else []
        if self.throttles is not None and (names or not configured_only):
            listed = f" ({', '.join(names)})" if names else ""
            lines.append(f"throttles: {len(names)} loaded{listed}")
        return lines

    async def tick(self) -> int:
        """Fire whatever is due now; return how many jobs were pushed (tests call this)."""
        return await self.cron.tick(self.clock())

    async def status(self) -> list[dict[str, Any]]:
        """The web UI's view of the entries; see :meth:`werk.manager.cron.Cron.status`."""
        return await self.cron.status()

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self.tick()
            except Exception:
                if self._stopping:
                    return
                self.errors += 1
                log.exception("cron tick failed")
            delay = MAX_SLEEP
            upcoming = self.cron.next_due(self.clock())
            if upcoming is not None:
                delay = min(MAX_SLEEP, max(0.01, upcoming - self.clock()))
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass


def check_settings(settings: dict[str, Any]) -> None:
    """Validate ``[[cron]]`` and ``[throttles]`` before the server is built.

    Raises:
        ConfigError: the first invalid entry, named, so ``werk server`` exits with it.
    """
    try:
        parse_cron(settings)
        parse_throttles(settings)
    except (CronConfigError, ThrottleConfigError) as exc:
        raise ConfigError(str(exc)) from exc


def attach(server: ServerState) -> CronScheduler:
    """Build the server's cron scheduler, let released throttle units wake blocked
    FETCHes, and register the SIGHUP reload of cron entries and throttles."""
    scheduler = CronScheduler(server.manager, server.config.settings)
    throttles = scheduler.throttles = throttles_of(server.manager.middleware)
    if throttles is not None:
        throttles.wake = server.manager.waiters.wake

    def reload(config: ServerConfig) -> None:
        try:
            check_settings(config.settings)
        except ConfigError as exc:
            log.error("reload failed, cron and throttles unchanged: %s", exc)
            return
        scheduler.reload(config.settings)
        if throttles is not None:
            throttles.reload(config.settings)
        for line in scheduler.loaded():
            log.info("%s", line)

    server.reload_hooks.append(reload)
    return scheduler
