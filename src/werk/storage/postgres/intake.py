"""Taking transactional pushes out of ``intake``: each one PUSHed in the transaction that
deletes its row, so a job committed by an application enters Werk exactly once.

:meth:`PgIntake.take_intake` claims up to ``limit`` rows with ``FOR UPDATE SKIP LOCKED``
(two servers never take the same row), binds its connection for the calling task (every
store call the ``push`` callback makes runs in that same transaction, see
:mod:`werk.storage.postgres.core`), and commits once: the jobs land in their queues and the
rows vanish together, or neither happens. A row ``push`` refuses with a
:class:`~werk.errors.CommandError` stays, with the message in ``error``, for an operator.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from werk.errors import CommandError
from werk.storage.base import IntakePush
from werk.storage.postgres.core import BOUND, Bound, Conn, PgCore, wrap_errors

log = logging.getLogger(__name__)


class PgIntake(PgCore):
    """The intake methods of :class:`~werk.storage.postgres.PostgresStore`."""

    _intake_callbacks: list[Callable[[], None]]

    def on_intake(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the loop) whenever transactional pushes may be waiting,
        after a commit by any application, and once after a lost LISTEN comes back."""
        if not hasattr(self, "_intake_callbacks"):
            self._intake_callbacks = []
        self._intake_callbacks.append(callback)

    def _intake_signal(self) -> None:
        for callback in list(getattr(self, "_intake_callbacks", [])):
            callback()

    @wrap_errors
    async def take_intake(self, push: IntakePush, limit: int = 100) -> int:
        """PUSH up to ``limit`` waiting transactional jobs with ``push``, in one transaction;
        return how many rows were taken (refused ones included)."""
        async with self._pool.connection() as conn:
            bound = Bound(self, conn)
            token = BOUND.set(bound)
            try:
                async with conn.transaction():
                    cur = await conn.execute(
                        self._sql(
                            "SELECT id, job FROM {s}.intake WHERE error IS NULL"
                            " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED"
                        ),
                        (limit,),
                    )
                    rows = await cur.fetchall()
                    for row_id, job in rows:
                        await self._take_one(conn, int(row_id), str(job), push)
            finally:
                BOUND.reset(token)
        self._notify(bound.queues)  # committed: wake this server's waiters
        return len(rows)

    async def _take_one(self, conn: Conn, row_id: int, job: str, push: IntakePush) -> None:
        try:
            async with conn.transaction():  # a savepoint: a refusal undoes only this job
                await push(job.encode())
                await conn.execute(self._sql("DELETE FROM {s}.intake WHERE id = %s"), (row_id,))
        except CommandError as exc:
            log.warning("postgres: intake row %d refused: %s", row_id, exc.message)
            await conn.execute(
                self._sql("UPDATE {s}.intake SET error = %s WHERE id = %s"), (exc.message, row_id)
            )

    async def intake_size(self) -> int:
        """Return how many transactional pushes wait (refused ones not counted)."""
        row = await self._one("SELECT count(*) FROM {s}.intake WHERE error IS NULL")
        return 0 if row is None else int(row[0])
