"""The cross-server wake-up of the PostgreSQL store: one LISTEN connection per store.

Every write that makes jobs fetchable runs ``NOTIFY <schema>_available`` with
``{"o": origin, "q": [queues]}`` in its transaction; PostgreSQL delivers it at commit to
every listening server, and :class:`Listener` calls the store's callbacks for messages
from other stores (a store already woke its own waiters). ``<schema>_intake`` tells that
an application committed a transactional push. After a lost connection it reconnects by
itself and then wakes every known queue and the intake, since notifications sent while
it was away are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

import psycopg

from werk.storage.postgres.pushsql import INTAKE_CHANNEL_SUFFIX

log = logging.getLogger(__name__)

RECONNECT_DELAYS = (0.05, 0.1, 0.2, 0.5, 1.0)
"""Seconds between reconnect attempts; the last one repeats."""


class Listener:
    """Follows the ``available`` and ``intake`` channels of one schema.

    Args:
        conninfo: where to connect (the listener keeps its own connection).
        schema: the store's schema; the channels are ``<schema>_available``/``_intake``.
        origin: the store's id; its own messages are skipped.
        notify: the store's callback dispatcher.
        known: returns every known queue (woken after a reconnect).
    """

    def __init__(
        self,
        conninfo: str,
        schema: str,
        origin: str,
        notify: Callable[[Iterable[str]], None],
        known: Callable[[], Awaitable[list[str]]],
    ) -> None:
        self._conninfo = conninfo
        self.available = f"{schema}_available"
        self.intake = f"{schema}{INTAKE_CHANNEL_SUFFIX}"
        self._origin = origin
        self._notify = notify
        self._known = known
        self._intake_callbacks: list[Callable[[], None]] = []
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self.failures = 0
        """How many times the LISTEN connection was lost."""

    def on_intake(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when an application may have committed a transactional push."""
        self._intake_callbacks.append(callback)

    async def start(self) -> None:
        """LISTEN (so notifications committed after this returns are seen), then follow."""
        await self._listen()
        self._task = asyncio.create_task(self._follow(), name="werk-postgres-listen")

    async def stop(self) -> None:
        """Stop following and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._pending):
            task.cancel()
        await self._disconnect()

    async def _listen(self) -> None:
        conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        await conn.execute(f"LISTEN {self.available}")
        await conn.execute(f"LISTEN {self.intake}")
        self._conn = conn

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()

    async def _follow(self) -> None:
        while True:
            try:
                conn = self._conn
                assert conn is not None
                async for note in conn.notifies():
                    self._dispatch(note.channel, note.payload)
                raise psycopg.OperationalError("the notification stream ended")
            except (psycopg.Error, OSError) as exc:
                self.failures += 1
                log.warning("postgres: lost the LISTEN connection (%s); reconnecting", exc)
                await self._disconnect()
                await self._relisten()

    def _dispatch(self, channel: str, payload: str) -> None:
        if channel == self.intake:
            self._intake()
            return
        try:
            decoded = cast("dict[str, Any]", json.loads(payload))
            origin, queues = decoded["o"], decoded["q"]
        except (ValueError, KeyError, TypeError):
            log.warning("postgres: ignoring a malformed notification %r", payload[:200])
            return
        if origin == self._origin:
            return
        if isinstance(queues, list):
            self._notify([str(q) for q in queues])
        elif queues is None:  # too many names for one payload: wake every known queue
            self._spawn(self._wake_known())

    def _intake(self) -> None:
        for callback in list(self._intake_callbacks):
            try:
                callback()
            except Exception:
                log.exception("postgres: intake callback failed")

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _wake_known(self) -> None:
        try:
            self._notify(await self._known())
        except (psycopg.Error, OSError) as exc:
            log.warning("postgres: could not list the known queues: %s", exc)

    async def _relisten(self) -> None:
        attempt = 0
        while True:
            await asyncio.sleep(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
            attempt += 1
            try:
                await self._listen()
            except (psycopg.Error, OSError):
                await self._disconnect()
                continue
            log.info("postgres: listening again")
            await self._wake_known()
            self._intake()
            return
