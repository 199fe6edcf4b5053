"""Jobs that leave the server without a worker's ACK or FAIL, and the one place that tells
the middleware of them (Werk's rule: a waiting result ends, a chain ends, a batch counts
the job as failed, a tracked job's state is final; see ``Middleware.ended``).

The ways out: deleting jobs unrun from a queue or a set (MUTATE ``discard``/``clear``, the
web UI's delete), removing whole queues (QUEUE REMOVE, the web UI's clear), killing jobs
into the dead set (MUTATE ``kill``, the web UI's kill) and dropping an expired job at fetch
(:mod:`werk.manager.expiry` reports it through :meth:`Deletions.tell`). A FAIL, and an
expired reservation, reach the ``failed`` hooks instead (the manager's own path).

A set is emptied or killed :data:`CHUNK` jobs per store call, each call its own
transaction (SQLite, PostgreSQL) or script (Redis), so that a PUSH from another client
waits at most one chunk, never the whole set. The store says which jobs each call really
took, and only those are reported (a job taken meanwhile, retried or fetched say, is not).
From a queue, the jobs some middleware hears of (``Middleware.hears_ended``) are deleted a
page at a time (the store says which it deleted), and every other listed job in one call.

Requeueing a set's jobs (MUTATE ``requeue``, the web UI's retry and add) goes the same way,
a chunk per store call, though it ends no job, so no hook hears of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from werk.manager.middleware import Ending, Middleware
from werk.manager.retry import DEAD_TTL
from werk.storage.base import Entry, SetName, Store

SCAN = 500
"""Entries a page of a queue moves on by while looking for the queued jobs a deletion must
report (each page reads twice that, reaching as far back)."""

CHUNK = 500
"""Jobs of a set deleted, killed or requeued per store call (one transaction or script
each)."""

Take = Callable[[list[str]], Awaitable[list[str]]]
"""Deletes or moves the listed jids of one set in one store call; returns those it took."""


class Deletions:
    """Deletes, removes and kills jobs for a manager, telling the middleware that hears.

    Args:
        store: the manager's store.
        hooks: the middleware whose ``ended`` hook is not the no-op.
        clock: the manager's wall clock in Unix seconds.
    """

    def __init__(
        self, store: Store, hooks: Sequence[Middleware], clock: Callable[[], float]
    ) -> None:
        self.store = store
        self.hooks = hooks
        self.clock = clock

    async def tell(self, entry: Entry, ending: Ending) -> None:
        """Call the ``ended`` hook of every middleware that hears of ``entry``, in
        registration order (for a job that already left, as an expired one dropped at
        fetch)."""
        now = self.clock()
        for middleware in self.hooks:
            if middleware.hears_ended(entry.body):
                await middleware.ended(entry, ending, now)

    async def from_queue(self, queue: str, jids: Sequence[str]) -> int:
        """Delete the listed jobs from a queue if they still wait there; return how many
        were deleted. The jobs to report are found by reading the queue from its head
        until every listed jid was seen (O(queue length) at worst)."""
        if not jids:
            return 0
        wanted = list(dict.fromkeys(jids))
        done, heard = 0, set[str]()
        if self.hooks:
            ending = Ending("deleted", f"queue {queue}")
            done, heard = await self._delete_heard(queue, set(wanted), ending)
        rest = [jid for jid in wanted if jid not in heard]
        return done + (len(await self.store.queue_delete(queue, rest)) if rest else 0)

    async def remove_queues(self, queues: Sequence[str] | None) -> None:
        """Delete queues with all their jobs and forget them (``None``: every known queue),
        as QUEUE REMOVE does. The jobs the hooks hear of are deleted first, a page at a
        time from each queue's head (O(queue length)), each reported as deleted from its
        queue; then the rest goes in one store call. A job pushed while that runs may be
        removed unreported."""
        if self.hooks:
            names = list(await self.store.queue_sizes()) if queues is None else queues
            for queue in names:
                await self._delete_heard(queue, None, Ending("deleted", f"queue {queue}"))
        await self.store.remove_queues(queues)

    async def from_set(self, target: SetName, jids: Sequence[str] | None) -> int:
        """Remove the listed jobs (``None``: all, including any added while it runs) from a
        set, :data:`CHUNK` per store call; return how many were removed."""

        async def delete(some: list[str]) -> list[str]:
            return await self.store.set_remove(target, some)

        ending = Ending("deleted", f"the {target} set")
        return await self._take(target, jids, delete, ending, bool(self.hooks))

    async def kill(self, target: SetName, jids: Sequence[str] | None) -> int:
        """Move the listed jobs (``None``: all) of a set to the dead set, :data:`CHUNK` per
        store call, each for :data:`~werk.manager.retry.DEAD_TTL` from when its chunk
        moved (Faktory's MUTATE ``kill``); return how many moved. The hooks hear of each
        job killed from the scheduled or retry set; a job killed within the dead set only
        gets its new score (it ended when it died)."""

        async def move(some: list[str]) -> list[str]:
            return await self.store.set_move(target, some, "dead", self.clock() + DEAD_TTL)

        ending = Ending("killed", f"the {target} set")
        return await self._take(target, jids, move, ending, bool(self.hooks) and target != "dead")

    async def requeue(self, target: SetName, jids: Sequence[str] | None) -> int:
        """Move the listed jobs (``None``: all, including any added while it runs) of a set
        to their queues now, :data:`CHUNK` per store call; return how many moved. A job
        no longer in the set is not counted; no hook hears (the job goes on)."""
        done = 0
        if jids is None:
            async for fresh in self._heads(target):  # reads the head after each move
                done += await self.store.requeue(target, [e.jid for e in fresh], self.clock())
            return done
        wanted = list(dict.fromkeys(jids))
        for start in range(0, len(wanted), CHUNK):
            done += await self.store.requeue(target, wanted[start : start + CHUNK], self.clock())
        return done

    async def _take(
        self, target: SetName, jids: Sequence[str] | None, take: Take, ending: Ending, hear: bool
    ) -> int:
        """Take the listed jobs (``None``: all) of a set a chunk at a time, telling the
        hooks (when ``hear``) of the jobs they hear of that each call really took."""
        if jids is None:
            return await self._take_all(target, take, ending, hear)
        done = 0
        wanted = list(dict.fromkeys(jids))
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            heard = await self._set_entries(target, chunk) if hear else []
            done += await self._take_chunk(chunk, heard, take, ending)
        return done

    async def _take_all(self, target: SetName, take: Take, ending: Ending, hear: bool) -> int:
        """Take a whole set a chunk at a time (see :meth:`_heads`)."""
        done = 0
        async for fresh in self._heads(target):
            heard = [entry for entry in fresh if hear and self._heard(entry.body)]
            done += await self._take_chunk([entry.jid for entry in fresh], heard, take, ending)
        return done

    async def _heads(self, target: SetName) -> AsyncIterator[list[Entry]]:
        """Yield a whole set a chunk at a time, each chunk read from its head (lowest score
        first) when the one before was taken, until a read finds nothing not tried yet.
        A job moved within the set (a kill within the dead set) gets a later score than
        every job not yet moved, so it is tried once; a job added meanwhile is yielded too."""
        tried: set[str] = set()
        while True:
            page = [item.entry for item in await self.store.set_page(target, 0, CHUNK)]
            fresh = [entry for entry in page if entry.jid not in tried]
            if not fresh:
                return
            tried.update(entry.jid for entry in fresh)
            yield fresh

    async def _take_chunk(
        self, jids: list[str], heard: Sequence[Entry], take: Take, ending: Ending
    ) -> int:
        """Take ``jids`` in one store call, telling the hooks of each ``heard`` entry it
        really took; return how many it took."""
        taken = await take(jids)
        gone = set(taken)
        for entry in heard:
            if entry.jid in gone:
                await self.tell(entry, ending)
        return len(taken)

    def _heard(self, body: bytes) -> bool:
        return any(m.hears_ended(body) for m in self.hooks)

    async def _set_entries(self, target: SetName, jids: Sequence[str]) -> list[Entry]:
        """The listed entries of a set that some hook hears of (one lookup each)."""
        found = [await self.store.set_get(target, jid) for jid in jids]
        return [item.entry for item in found if item is not None and self._heard(item.entry.body)]

    async def _delete_heard(
        self, queue: str, wanted: set[str] | None, ending: Ending
    ) -> tuple[int, set[str]]:
        """Delete the jobs of a queue that some hook hears of, among ``wanted`` (read until
        every one was seen; ``None``: the whole queue), telling the hooks of those this
        call deleted (a job fetched meanwhile is not); return how many, and the heard jids.

        Pages are read from the head and each page's heard jobs deleted in one store call
        before the next read. The jobs kept (not heard) stay at the head, so the next page
        starts after them, in a window reaching :data:`SCAN` entries back that must hold
        the last one kept: a FETCH meanwhile moves it toward the head, and when it moved
        out of the window the scan reads again from the head (what it saw is skipped), so
        no job is missed."""
        seen: set[str] = set()
        heard: set[str] = set()
        done = kept = 0
        anchor: str | None = None  # the last job kept, ``kept`` entries from the head
        while wanted is None or not wanted <= seen:
            start = max(0, kept - SCAN)
            page = [item.entry for item in await self.store.queue_page(queue, start, 2 * SCAN)]
            if anchor is not None and all(entry.jid != anchor for entry in page):
                kept, anchor = 0, None  # a FETCH moved it out of the window
                continue
            found = self._unseen_heard(page, seen, wanted)
            jids = [entry.jid for entry in found]
            deleted = set(await self.store.queue_delete(queue, jids)) if jids else set()
            for entry in found:
                heard.add(entry.jid)
                if entry.jid in deleted:
                    done += 1
                    await self.tell(entry, ending)
            if len(page) < 2 * SCAN:
                break
            left = [entry.jid for entry in page if entry.jid not in heard]
            kept, anchor = start + len(left), (left[-1] if left else None)
        return done, heard

    def _unseen_heard(
        self, page: Sequence[Entry], seen: set[str], wanted: set[str] | None
    ) -> list[Entry]:
        """The entries of a page not seen before, among ``wanted`` (``None``: all), that
        some hook hears of; marks every entry of the page seen."""
        found = []
        for entry in page:
            if entry.jid in seen:
                continue
            seen.add(entry.jid)
            if (wanted is None or entry.jid in wanted) and self._heard(entry.body):
                found.append(entry)
        return found
