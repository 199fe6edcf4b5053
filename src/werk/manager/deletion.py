"""Deleting jobs that never ran (a queue's waiting jobs, a set's entries), telling the
middleware that must hear of them (Werk's rule: a job that asked for a result ends
``failed`` with errtype ``Deleted``, and a job carrying a chain ends it).

Only the jobs some middleware hears of (``Middleware.hears_deleted``) are looked up and
deleted one at a time, so that what is reported was really deleted here (a job taken
meanwhile, by a FETCH say, is not); every other listed job goes in one store call, as it
would with no middleware at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from werk.manager.middleware import Middleware
from werk.storage.base import Entry, Scored, SetName, Store

SCAN = 500
"""Entries read at a time while looking for the queued jobs a deletion must report."""

Delete = Callable[[list[str] | None], Awaitable[int]]
"""Deletes the listed jids (``None``: all) from one queue or set; returns how many."""


class Deletions:
    """Deletes jobs unrun from queues and sets for a manager.

    Args:
        store: the manager's store.
        hooks: the middleware whose ``deleted`` hook is not the no-op.
        clock: the manager's wall clock in Unix seconds.
    """

    def __init__(
        self, store: Store, hooks: Sequence[Middleware], clock: Callable[[], float]
    ) -> None:
        self.store = store
        self.hooks = hooks
        self.clock = clock

    async def from_queue(self, queue: str, jids: Sequence[str]) -> int:
        """Delete the listed jobs from a queue if they still wait there; return how many
        were deleted. A job to report is found by reading the queue page by page until
        every listed jid was seen (O(queue length) at worst)."""
        if not jids:
            return 0
        wanted = list(dict.fromkeys(jids))
        heard = await self._queued_heard(queue, set(wanted)) if self.hooks else []

        async def delete(some: list[str] | None) -> int:
            return await self.store.queue_delete(queue, some or [])

        return await self._delete(heard, wanted, delete, f"queue {queue}")

    async def from_set(self, target: SetName, jids: Sequence[str] | None) -> int:
        """Remove the listed jobs (``None``: all) from a set; return how many were
        removed."""
        wanted = None if jids is None else list(dict.fromkeys(jids))
        heard: list[Entry] = []
        if self.hooks:
            if wanted is None:
                items = await self._set_heard(target)
            else:
                found = [await self.store.set_get(target, jid) for jid in wanted]
                items = [item for item in found if item is not None]
            heard = [item.entry for item in items if self._heard(item.entry.body)]

        async def delete(some: list[str] | None) -> int:
            return await self.store.set_remove(target, some)

        return await self._delete(heard, wanted, delete, f"the {target} set")

    async def _delete(
        self, heard: Sequence[Entry], wanted: list[str] | None, delete: Delete, where: str
    ) -> int:
        """Delete each heard entry alone, telling the hooks of those really deleted here,
        then the rest of ``wanted`` (``None``: everything left) in one call."""
        done = 0
        for entry in heard:
            if await delete([entry.jid]):
                done += 1
                now = self.clock()
                for middleware in self.hooks:
                    await middleware.deleted(entry, where, now)
        if wanted is None:
            return done + await delete(None)
        reported = {entry.jid for entry in heard}
        rest = [jid for jid in wanted if jid not in reported]
        return done + (await delete(rest) if rest else 0)

    def _heard(self, body: bytes) -> bool:
        return any(m.hears_deleted(body) for m in self.hooks)

    async def _queued_heard(self, queue: str, wanted: set[str]) -> list[Entry]:
        found: list[Entry] = []
        offset = 0
        while wanted:
            page = await self.store.queue_page(queue, offset, SCAN)
            for item in page:
                if item.entry.jid in wanted:
                    wanted.discard(item.entry.jid)
                    if self._heard(item.entry.body):
                        found.append(item.entry)
            if len(page) < SCAN:
                break
            offset += len(page)
        return found

    async def _set_heard(self, target: SetName) -> list[Scored]:
        """The entries of a set that some hook may hear of: those matching the hooks'
        globs (the whole set when one has none), each once."""
        globs = {middleware.deleted_glob for middleware in self.hooks}
        if None in globs:
            return await self.store.set_match(target, None)
        found: dict[str, Scored] = {}
        for glob in sorted(g for g in globs if g is not None):
            for item in await self.store.set_match(target, glob):
                found.setdefault(item.entry.jid, item)
        return list(found.values())
