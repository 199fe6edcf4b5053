"""The Redis storage backend: several Werk servers share one Redis (6.2+ or Valkey).

Every multi-step change is one Lua script (:mod:`werk.storage.redis.scripts`), so every
rule holds across servers; the key layout is in :mod:`werk.storage.redis.keys`. The hot
operations (push, FETCH, ACK, FAIL) that arrive in the same event-loop turn share one script
call (:mod:`werk.storage.redis.batch`). Blocking FETCH wakes across servers through a
pub/sub channel that :class:`AvailableListener` follows; a push is published only while
another server has a FETCH waiting.
redis-py errors become :class:`~werk.errors.StorageError`; the client reconnects by itself.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import asdict
from typing import Any, cast

import redis.asyncio as aioredis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from werk.storage.base import (
    AvailableCallback,
    Counters,
    DayCount,
    Entry,
    Process,
    Queued,
    Reservation,
    Store,
    WaitingPredicate,
)
from werk.storage.redis.batch import Batcher
from werk.storage.redis.codec import (
    WATCH,
    fmt_float,
    unpack_entry,
    unpack_reservation,
    wrap_errors,
)
from werk.storage.redis.coord import RedisCoord
from werk.storage.redis.keys import DEFAULT_PREFIX, Keys
from werk.storage.redis.link import ScriptLink
from werk.storage.redis.listener import AvailableListener
from werk.storage.redis.retry import StoreRetry
from werk.storage.redis.scripts import BATCH
from werk.storage.redis.sets import RedisSets
from werk.storage.redis.url import parse_url

log = logging.getLogger("werk.storage.redis")


class RedisStore(RedisCoord, RedisSets):
    """A :class:`~werk.storage.base.Store` kept in Redis, shareable by many servers.

    Args:
        client_url: a redis-py URL (``redis://``, ``rediss://``, ``unix://``) without
            query options.
        prefix: the prefix of every key (see :mod:`werk.storage.redis.keys`).
        options: redis-py connection options, typed (:mod:`werk.storage.redis.url`); they
            override Werk's defaults.
        retries: how often a command is retried on a lost connection (with backoff from
            50 ms to 1 s) before it fails with :class:`~werk.errors.StorageError`; the
            default rides out about 10 s of Redis being away.
        max_connections: the size of the connection pool; more concurrent commands wait.
    """

    def __init__(
        self,
        client_url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        retries: int = 12,
        max_connections: int = 32,
        options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(Keys(prefix))
        self.client_url = client_url
        self.options = options or {}
        self.retries = retries
        self.max_connections = max_connections
        self.origin = uuid.uuid4().hex
        self._listener: AvailableListener | None = None
        self._batcher = Batcher(None, self.keys, self.origin)

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        """Build an unopened store from a URL that may carry ``?prefix=`` and the options
        of :data:`werk.storage.redis.url.OPTIONS`.

        Raises:
            StorageURLError: an option is unknown or its value bad (naming it).
        """
        parsed = parse_url(url)
        return cls(parsed.client_url, prefix=parsed.prefix, options=parsed.options)

    def _connect(self, retries: int) -> aioredis.Redis:
        options: dict[str, Any] = {
            "max_connections": self.max_connections,
            "health_check_interval": 10,
            "socket_connect_timeout": 5,
        }
        # TCP keepalive for TCP connections (redis-py's Unix socket connection refuses it).
        if not self.client_url.lower().startswith("unix:"):
            options["socket_keepalive"] = True
        options.update(self.options)  # the URL's, checked by werk.storage.redis.url
        # A blocking pool: a burst of concurrent commands waits for a free connection
        # instead of failing with "Too many connections".
        pool = aioredis.BlockingConnectionPool.from_url(
            self.client_url,
            timeout=20,
            retry=StoreRetry(ExponentialBackoff(cap=1.0, base=0.05), retries),
            retry_on_error=[RedisConnectionError, RedisTimeoutError, OSError],
            **options,
        )
        return aioredis.Redis.from_pool(pool)

    @wrap_errors
    async def open(self) -> None:
        """Connect, check that Redis answers, and start following the pub/sub channel."""
        self._redis = self._connect(self.retries)
        self._load_scripts()
        self._link = ScriptLink(self._redis, BATCH, self.retries)
        self._batcher.link = self._link
        await self._redis.ping()
        await self._warn_without_aof()
        await self._warn_evicting()
        self._warn_prefix()
        listener = AvailableListener(
            lambda: self._connect(retries=0), self.keys, self.origin, self._notify
        )
        await listener.start()
        self._listener = listener
        WATCH.stores += 1  # open: a call that waits long is logged from now on

    async def _warn_without_aof(self) -> None:
        """Log a warning when Redis writes no append-only file: ``+OK`` to a PUSH then
        means the job is in Redis' memory only. Say nothing when ``INFO`` is refused."""
        try:
            info = await self._redis.info("persistence")
        except Exception:  # a managed Redis may rename or refuse INFO
            return
        if str(info.get("aof_enabled", "1")) != "0":
            return
        log.warning(
            "Redis keeps no append-only file (appendonly no): +OK to a PUSH means the job"
            " is in Redis' memory, and a Redis restart loses every job written since its"
            " last snapshot; set 'appendonly yes' in Redis to keep them"
            " (docs/storage-redis.md)"
        )

    async def _warn_evicting(self) -> None:
        """Log a warning when Redis may evict keys to stay under ``maxmemory``: it would
        drop jobs it acknowledged, silently. Say once when ``CONFIG GET`` is refused."""
        try:
            found = await self._redis.config_get("maxmemory-policy")
        except ResponseError as exc:  # a managed Redis may rename CONFIG or deny it (NOPERM)
            log.info(
                "could not read Redis' maxmemory-policy (%s): make sure it is noeviction,"
                " or Redis may drop jobs when it runs out of memory (docs/storage-redis.md)",
                exc,
            )
            return
        policy = {_text(k): _text(v) for k, v in found.items()}.get("maxmemory-policy")
        if policy in (None, "noeviction"):  # None: a Redis that hides the setting
            return
        log.warning(
            "Redis' maxmemory-policy is %s: when Redis reaches maxmemory it deletes keys,"
            " jobs it acknowledged among them; set 'maxmemory-policy noeviction' (a full Redis"
            " then refuses new pushes instead) (docs/storage-redis.md)",
            policy,
        )

    def _warn_prefix(self) -> None:
        """Log a warning when the key prefix ends in a letter or digit: ``?prefix=tr``
        and ``?prefix=tr:`` are two separate installations, and the first one's keys run
        into their names (``trq:default``)."""
        prefix = self.keys.prefix
        if prefix and prefix[-1].isalnum():
            log.warning(
                "the Redis key prefix %r ends without a separator: its keys read %r, and"
                " %r is another installation; end it with ':' (docs/storage-redis.md)",
                prefix,
                self.keys.queue("default"),
                f"{prefix}:",
            )

    async def close(self) -> None:
        """Stop the subscriber and close the connections (Redis owns durability)."""
        if self._listener is not None:
            WATCH.stores -= 1
            await self._listener.stop()
            self._listener = None
        if hasattr(self, "_redis"):
            await self._link.close()
            await self._redis.aclose()

    def on_available(
        self, callback: AvailableCallback, waiting: WaitingPredicate | None = None
    ) -> None:
        """Register a callback for queues that may have become fetchable (any server);
        ``waiting`` is not needed here."""
        self._callbacks.append(callback)

    # -- queues ------------------------------------------------------------------

    @wrap_errors
    async def enqueue(self, entries: Sequence[Entry], now: float) -> None:
        """Append entries to their queues; durable as far as Redis is configured.

        Batched with the other pushes, ACKs, FAILs and FETCHes of the same event-loop turn
        (:mod:`werk.storage.redis.batch`); other servers hear of it only while one of them
        has a FETCH waiting."""
        if not entries:
            return
        await self._batcher.enqueue(entries, now)
        self._notify(dict.fromkeys(e.queue for e in entries))

    @wrap_errors
    async def fetch(self, queues: Sequence[str], now: float, wid: str) -> Reservation | None:
        """Pop and reserve the next job of the first non-empty unpaused queue (batched)."""
        if not queues:
            return None
        return await self._batcher.fetch(queues, now, wid)

    @wrap_errors
    async def queue_sizes(self) -> dict[str, int]:
        """Return the size of every known queue."""
        names = sorted(await self._known())
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.zcard(self.keys.queue(name))
            sizes = await pipe.execute()
        return dict(zip(names, (int(s) for s in sizes), strict=True))

    async def _known(self) -> set[str]:
        members = await cast("Awaitable[set[bytes]]", self._redis.smembers(self.keys.queues))
        return {m.decode() for m in members}

    @wrap_errors
    async def queue_page(self, queue: str, offset: int, limit: int) -> list[Queued]:
        """Return up to ``limit`` entries of a queue in fetch order, after ``offset``."""
        if limit <= 0:
            return []
        rows = await self._read_rank(
            self.keys.queue(queue), self.keys.queue_entries(queue), offset, limit, False
        )
        out = []
        for jid, _, data in rows:
            entry, enqueued_at = unpack_entry(jid, data)
            out.append(Queued(entry, enqueued_at or 0.0))
        return out

    @wrap_errors
    async def queue_delete(self, queue: str, jids: Sequence[str]) -> list[str]:
        """Delete the listed jobs from a queue; return the jids of those deleted, in the
        listed order (one ZREM each, in one transaction)."""
        k = self.keys
        return await self._remove_each(k.queue(queue), k.queue_entries(queue), jids)

    @wrap_errors
    async def oldest_enqueued(self, queues: Sequence[str]) -> dict[str, float | None]:
        """Return per queue the ``enqueued_at`` of its oldest entry (``None`` if empty)."""
        if not queues:
            return {}
        k = self.keys
        found = await self._run("oldest", [], [k.queue_prefix, k.queue_entries_prefix, *queues])
        values = cast("list[bytes]", found)
        return {q: (float(v) if v else None) for q, v in zip(queues, values, strict=True)}

    @wrap_errors
    async def pause(self, queues: Sequence[str] | None) -> None:
        """Pause the named known queues, or every known queue for ``None``."""
        if queues is not None and not queues:
            return
        await self._run("pause", [self.keys.queues, self.keys.paused], list(queues or []))

    @wrap_errors
    async def resume(self, queues: Sequence[str] | None) -> None:
        """Resume the named queues, or every queue for ``None``; announce them."""
        if queues is not None and not queues:
            return
        k = self.keys
        args = [k.available, self.origin, *(queues or [])]
        await self._run("resume", [k.queues, k.paused], args)
        self._notify(await self._known() if queues is None else queues)

    @wrap_errors
    async def paused(self) -> set[str]:
        """Return the names of the paused queues."""
        members = await cast("Awaitable[set[bytes]]", self._redis.smembers(self.keys.paused))
        return {m.decode() for m in members}

    @wrap_errors
    async def remove_queues(self, queues: Sequence[str] | None) -> None:
        """Delete queues with their jobs and forget them (``None``: every queue)."""
        if queues is not None and not queues:
            return
        k = self.keys
        args = [k.queue_prefix, k.queue_entries_prefix, *(queues or [])]
        await self._run("remove_queues", [k.queues, k.paused], args)

    # -- reservations --------------------------------------------------------------

    @wrap_errors
    async def reservation(self, jid: str) -> Reservation | None:
        """Return the reservation held for ``jid``, if any."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hget(self.keys.working_entries, jid)
            pipe.zscore(self.keys.working, jid)
            data, score = await pipe.execute()
        if data is None or score is None:
            return None
        return unpack_reservation(jid, data, float(score))

    @wrap_errors
    async def ack(self, jid: str, now: float) -> Reservation | None:
        """Release a reservation and count one processed job (batched)."""
        return await self._batcher.ack(jid, now)

    @wrap_errors
    async def extend(self, jid: str, expires_at: float) -> bool:
        """Move a reservation's expiry later; ``False`` if ``jid`` holds none."""
        found = await self._run("extend", [self.keys.working], [jid, fmt_float(expires_at)])
        return bool(found)

    @wrap_errors
    async def expired(self, now: float, limit: int) -> list[Reservation]:
        """Return up to ``limit`` reservations whose expiry is at or before ``now``."""
        if limit <= 0:
            return []
        k = self.keys
        args = ["score", "-inf", fmt_float(now), "0", "0", str(limit)]
        rows = self._rows(await self._run("read", [k.working, k.working_entries], args))
        return [unpack_reservation(jid, data, score) for jid, score, data in rows]

    @wrap_errors
    async def working(self, offset: int, limit: int) -> list[Reservation]:
        """Return reservations ordered by expiry, after ``offset``."""
        if limit <= 0:
            return []
        k = self.keys
        rows = await self._read_rank(k.working, k.working_entries, offset, limit, False)
        return [unpack_reservation(jid, data, score) for jid, score, data in rows]

    @wrap_errors
    async def working_size(self) -> int:
        """Return the number of reservations."""
        # Every score but the sentinel's +inf (see keys.WORKING_SENTINEL).
        return int(await self._redis.zcount(self.keys.working, "-inf", "(+inf"))

    # -- counters ------------------------------------------------------------------

    @wrap_errors
    async def counters(self) -> Counters:
        """Return the lifetime processed and failure counters."""
        processed, failures = await cast(
            "Awaitable[list[bytes | None]]",
            self._redis.hmget(self.keys.stats, ["processed", "failures"]),
        )
        return Counters(int(processed or 0), int(failures or 0))

    @wrap_errors
    async def history(self, days: Sequence[str]) -> list[DayCount]:
        """Return the counts of the listed UTC days, zero where none."""
        if not days:
            return []
        fields = [f"{d}:{c}" for d in days for c in ("processed", "failures")]
        values = await cast(
            "Awaitable[list[bytes | None]]", self._redis.hmget(self.keys.daily, fields)
        )
        counts = [int(v or 0) for v in values]
        return [DayCount(d, counts[2 * i], counts[2 * i + 1]) for i, d in enumerate(days)]

    # -- worker processes -------------------------------------------------------------

    @wrap_errors
    async def put_process(self, process: Process) -> None:
        """Create or replace the record of a worker process (shared by every server)."""
        data = json.dumps(asdict(process))
        await self._redis.hset(self.keys.processes, process.wid, data)

    @wrap_errors
    async def get_process(self, wid: str) -> Process | None:
        """Return the record of a worker process, if known."""
        data = await cast("Awaitable[bytes | None]", self._redis.hget(self.keys.processes, wid))
        return None if data is None else Process(**json.loads(data))

    @wrap_errors
    async def processes(self) -> list[Process]:
        """Return every known worker process, from every server."""
        found = await cast(
            "Awaitable[dict[bytes, bytes]]", self._redis.hgetall(self.keys.processes)
        )
        return [Process(**json.loads(v)) for _, v in sorted(found.items())]

    @wrap_errors
    async def delete_process(self, wid: str) -> None:
        """Forget a worker process."""
        await self._redis.hdel(self.keys.processes, wid)

    # -- everything -----------------------------------------------------------------

    @wrap_errors
    async def flush(self) -> None:
        """Delete every job, set, queue, pause and counter, and every lock, record and
        limiter; worker processes stay."""
        k = self.keys
        keys = [k.queues, k.counts, k.limiters, *k.flushed()]
        prefixes = [k.queue_prefix, k.queue_entries_prefix, k.count_prefix]
        await self._run("flush", keys, [*prefixes, k.limiter_prefix, k.limiter_units_prefix])


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


_: type[Store] = RedisStore

__all__ = ["RedisStore"]
