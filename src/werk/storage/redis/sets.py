"""The Redis store's time-ordered sets (scheduled, retries, dead) and failure placement.

:class:`RedisSets` is the base of :class:`~werk.storage.redis.store.RedisStore`: it owns the
client, the registered Lua scripts and every method that writes or reads a set. Filtered
listings scan the set in chunks by rank; unfiltered pages are one ZRANGE by rank.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, cast

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from werk.storage.base import AvailableCallback, Placement, Scored, SetFilter, SetName
from werk.storage.matching import glob, is_empty, utc_day
from werk.storage.redis import scripts as lua
from werk.storage.redis.batch import Batcher
from werk.storage.redis.codec import (
    fmt_float,
    pack_entry,
    unpack_entry,
    wrap_errors,
)
from werk.storage.redis.keys import Keys

log = logging.getLogger(__name__)

SCAN_CHUNK = 500

FILTER_CHUNK = 5000
"""Entries a filtered listing matches per script call (inside Redis, a few ms each)."""
"""Entries read per round trip when a listing has to scan a set."""

MOVE_CHUNK = 1000
"""Entries moved per script call when a whole set is requeued."""

_SCRIPTS = {
    "fail": lua.FAIL,
    "extend": lua.EXTEND,
    "move": lua.MOVE,
    "set_move": lua.SET_MOVE,
    "remove_before": lua.REMOVE_BEFORE,
    "read": lua.READ,
    "filter": lua.FILTER,
    "oldest": lua.OLDEST,
    "pause": lua.PAUSE,
    "resume": lua.RESUME,
    "remove_queues": lua.REMOVE_QUEUES,
    "flush": lua.FLUSH,
}

Row = tuple[str, float, bytes]
"""One read row: jid, score, packed value."""


class RedisSets:
    """Client, scripts, and the set operations of the Redis store (see the module doc)."""

    _redis: aioredis.Redis
    _batcher: Batcher
    origin: str

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        self._scripts: dict[str, AsyncScript] = {}
        self._callbacks: list[AvailableCallback] = []

    def _notify(self, queues: Iterable[str]) -> None:
        # Called for this store's own writes and, via the listener, for other servers'.
        names = list(queues)
        if names:
            for callback in list(self._callbacks):
                try:
                    callback(names)
                except Exception:  # a waiter's bug must not fail a committed write
                    log.exception("redis: on_available callback failed")

    def _load_scripts(self) -> None:
        self._scripts = {n: self._redis.register_script(src) for n, src in _SCRIPTS.items()}

    async def _run(self, name: str, keys: Sequence[str], args: Sequence[str | bytes]) -> Any:
        # EVALSHA, falling back to SCRIPT LOAD after NOSCRIPT (e.g. a restarted Redis).
        return await self._scripts[name](keys=list(keys), args=list(args))

    @staticmethod
    def _rows(found: Any) -> list[Row]:
        flat = cast("list[bytes]", found)
        return [(flat[i].decode(), float(flat[i + 1]), flat[i + 2]) for i in range(0, len(flat), 3)]

    async def _read_rank(
        self, zkey: str, hkey: str, offset: int, limit: int, reverse: bool
    ) -> list[Row]:
        args = ["rank", str(offset), str(offset + limit - 1), "1" if reverse else "0"]
        return self._rows(await self._run("read", [zkey, hkey], args))

    async def _scan(self, name: SetName, reverse: bool = False) -> AsyncIterator[Scored]:
        # Chunks by rank: entries moved concurrently may be skipped or seen twice.
        zkey, hkey = self.keys.set(name), self.keys.set_entries(name)
        offset = 0
        while True:
            rows = await self._read_rank(zkey, hkey, offset, SCAN_CHUNK, reverse)
            for jid, score, data in rows:
                yield Scored(score, unpack_entry(jid, data)[0])
            if len(rows) < SCAN_CHUNK:
                return
            offset += SCAN_CHUNK

    # -- failure placement -------------------------------------------------------------

    async def _release_failed(
        self, jid: str, now: float, placement: Placement | None, deadline: str
    ) -> bool:
        k = self.keys
        keys = [k.working, k.working_entries, k.stats, k.daily]
        args: list[str | bytes] = [jid, utc_day(now), deadline]
        if placement is not None:
            keys += [k.set(placement.set), k.set_entries(placement.set)]
            args += [fmt_float(placement.score), pack_entry(placement.entry)]
        return bool(await self._run("fail", keys, args))

    @wrap_errors
    async def fail(self, jid: str, now: float, placement: Placement | None) -> bool:
        """Release a reservation, count it as failed, and place the job (or discard it);
        batched with the other FAILs, ACKs and FETCHes of the same event-loop turn."""
        return await self._batcher.fail(jid, now, placement)

    @wrap_errors
    async def expire(self, jid: str, now: float, placement: Placement | None) -> bool:
        """Like :meth:`fail`, only while the reservation's expiry is still <= ``now``."""
        return await self._release_failed(jid, now, placement, fmt_float(now))

    # -- time-ordered sets -----------------------------------------------------------

    @wrap_errors
    async def add(self, name: SetName, items: Sequence[Scored]) -> None:
        """Add (or replace, by jid) entries in a set, in one transaction."""
        if not items:
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self.keys.set(name), {i.entry.jid: i.score for i in items})
            pipe.hset(
                self.keys.set_entries(name),
                mapping={i.entry.jid: pack_entry(i.entry) for i in items},
            )
            await pipe.execute()

    async def _move(
        self, name: SetName, now: float, mode: str, limit: int, jids: Sequence[str] = ()
    ) -> int:
        # The script announced the queues to every server; wake this one's waiters too.
        k = self.keys
        keys = [k.set(name), k.set_entries(name), k.seq, k.queues]
        head = [k.queue_prefix, k.queue_entries_prefix, k.available, self.origin]
        args = [*head, fmt_float(now), mode, str(limit), *jids]
        found = cast("list[Any]", await self._run("move", keys, args))
        self._notify(q.decode() for q in found[1:])
        return int(found[0])

    @wrap_errors
    async def move_due(self, name: SetName, now: float, limit: int) -> int:
        """Move up to ``limit`` due entries into their queues; return how many moved."""
        if limit <= 0:
            return 0
        return await self._move(name, now, "due", limit)

    @wrap_errors
    async def requeue(self, name: SetName, jids: Sequence[str] | None, now: float) -> int:
        """Move the listed entries (``None``: all) to their queues; return how many."""
        if jids is not None:
            return await self._move(name, now, "list", 0, jids) if jids else 0
        total = 0
        for _ in range(int(await self._redis.zcard(self.keys.set(name))) // MOVE_CHUNK + 1):
            moved = await self._move(name, now, "all", MOVE_CHUNK)
            total += moved
            if moved < MOVE_CHUNK:
                break
        return total

    @wrap_errors
    async def next_due(self, name: SetName) -> float | None:
        """Return the lowest score in a set, or ``None`` when it is empty."""
        found = await self._redis.zrange(self.keys.set(name), 0, 0, withscores=True)
        return float(found[0][1]) if found else None

    @wrap_errors
    async def set_size(self, name: SetName) -> int:
        """Return the number of entries in a set."""
        return int(await self._redis.zcard(self.keys.set(name)))

    @wrap_errors
    async def set_page(
        self,
        name: SetName,
        offset: int,
        limit: int,
        *,
        reverse: bool = False,
        where: SetFilter | None = None,
    ) -> list[Scored]:
        """Return a page of a set by score; ZRANGE by rank unless filtered (a scan)."""
        if limit <= 0:
            return []
        if where is None or is_empty(where):
            zkey, hkey = self.keys.set(name), self.keys.set_entries(name)
            rows = await self._read_rank(zkey, hkey, offset, limit, reverse)
            return [Scored(score, unpack_entry(jid, data)[0]) for jid, score, data in rows]
        out: list[Scored] = []
        skipped = 0
        start = 0
        while len(out) < limit:
            # Count a chunk's matches first; fetch its rows only when the page reaches it.
            scanned, matched, _ = await self._filter(name, where, start, reverse, False)
            if skipped + matched > offset:
                _, _, rows = await self._filter(name, where, start, reverse, True)
                for jid, score, data in rows[max(0, offset - skipped) :]:
                    out.append(Scored(score, unpack_entry(jid, data)[0]))
                    if len(out) >= limit:
                        break
            skipped += matched
            if scanned < FILTER_CHUNK:
                break
            start += FILTER_CHUNK
        return out

    async def _filter(
        self, name: SetName, where: SetFilter, start: int, reverse: bool, rows: bool
    ) -> tuple[int, int, list[Row]]:
        """Match one chunk of a set inside Redis; return scanned, matched and the rows."""
        zkey, hkey = self.keys.set(name), self.keys.set_entries(name)
        args = [str(start), str(start + FILTER_CHUNK - 1), "1" if reverse else "0"]
        args += [where.queue or "", where.jobtype or "", where.text or "", "1" if rows else "0"]
        found = cast("list[Any]", await self._run("filter", [zkey, hkey], args))
        return int(found[0]), int(found[1]), self._rows(found[2:])

    @wrap_errors
    async def set_count(self, name: SetName, where: SetFilter) -> int:
        """Return how many entries of a set match ``where`` (a scan inside Redis)."""
        if is_empty(where):
            return await self.set_size(name)
        total, start = 0, 0
        while True:
            scanned, matched, _ = await self._filter(name, where, start, False, False)
            total += matched
            if scanned < FILTER_CHUNK:
                return total
            start += FILTER_CHUNK

    @wrap_errors
    async def set_get(self, name: SetName, jid: str) -> Scored | None:
        """Return the entry of ``jid`` in a set, if present."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hget(self.keys.set_entries(name), jid)
            pipe.zscore(self.keys.set(name), jid)
            data, score = await pipe.execute()
        if data is None or score is None:
            return None
        return Scored(float(score), unpack_entry(jid, data)[0])

    @wrap_errors
    async def set_match(self, name: SetName, pattern: str | None) -> list[Scored]:
        """Return every entry whose body matches a Redis-MATCH glob, in score order."""
        if pattern is None:
            return [item async for item in self._scan(name)]
        regex = glob(pattern)
        return [item async for item in self._scan(name) if regex.match(item.entry.body)]

    @wrap_errors
    async def set_remove(self, name: SetName, jids: Sequence[str]) -> list[str]:
        """Remove the listed entries; return the jids of those removed, in the listed order
        (one ZREM each, in one transaction)."""
        return await self._remove_each(self.keys.set(name), self.keys.set_entries(name), jids)

    async def _remove_each(self, zkey: str, hkey: str, jids: Sequence[str]) -> list[str]:
        """Remove the listed members of a zset and its hash, one ZREM each in one
        transaction; return those removed, in the listed order."""
        wanted = list(dict.fromkeys(jids))
        if not wanted:
            return []
        async with self._redis.pipeline(transaction=True) as pipe:
            for jid in wanted:
                pipe.zrem(zkey, jid)
            pipe.hdel(hkey, *wanted)
            removed = await pipe.execute()
        return [jid for jid, gone in zip(wanted, removed[:-1], strict=True) if gone]

    @wrap_errors
    async def set_move(
        self, name: SetName, jids: Sequence[str], to: SetName, score: float
    ) -> list[str]:
        """Move the listed entries to another set with a new score; return the jids of
        those moved, in the listed order (one script call)."""
        wanted = list(dict.fromkeys(jids))
        if not wanted:
            return []
        k = self.keys
        keys = [k.set(name), k.set_entries(name), k.set(to), k.set_entries(to)]
        moved = cast("list[bytes]", await self._run("set_move", keys, [fmt_float(score), *wanted]))
        return [jid.decode() for jid in moved]

    @wrap_errors
    async def remove_before(self, name: SetName, now: float, limit: int) -> int:
        """Delete up to ``limit`` entries with ``score <= now``; return how many."""
        if limit <= 0:
            return 0
        keys = [self.keys.set(name), self.keys.set_entries(name)]
        return int(await self._run("remove_before", keys, [fmt_float(now), str(limit)]))
