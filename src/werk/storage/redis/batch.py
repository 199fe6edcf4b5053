"""Group commit for the Redis store: the PUSHes, ACKs, FAILs and FETCHes that arrive in the
same event-loop turn, from any number of connections, go to Redis as one script call.

What SQLite's writer thread does with one commit per group of writes, this does with one
round trip per group: each operation waits on a future; the first one of a turn schedules
a flush for the next turn, so everything that arrives meanwhile joins it, and while a batch
is in flight the next one fills up. One job alone still goes out at once (no timer).

The script (:data:`werk.storage.redis.scripts.BATCH`) runs the sections in a fixed order,
enqueue, ack, fail, fetch, each one linearizable as if its operations had run one by one in
arrival order: every operation in a batch was concurrent with the others, so any order is
one a client could have seen. Semantics per operation are those of the single-operation
scripts they replace (Werk's own; Faktory keeps the same rules in its Redis).

The script goes to Redis over a connection of its own
(:class:`werk.storage.redis.link.ScriptLink`), written at once when the batch starts, and
its reply resolves the batch's futures from the connection's ``data_received``: no task
and no future per batch. A task takes over only to reconnect or reload the script.

Each call carries a key of its own (``P batch:<origin>:<n>``) where the script keeps its
reply, so that the call sent again after a lost connection (the link's rule) returns the
kept reply if the first one ran, and runs nothing twice; the next call deletes the keys of
the replies that arrived.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from werk.errors import StorageError
from werk.storage.base import Entry, Placement, Reservation
from werk.storage.matching import utc_day
from werk.storage.redis.codec import (
    fmt_float,
    pack_entry,
    unpack_entry,
    unpack_reservation,
)
from werk.storage.redis.keys import WORKING_SENTINEL, Keys
from werk.storage.redis.link import ScriptLink

MAX_OPS = 500
"""Operations (or enqueued entries) per batch: bounds how long one script holds Redis."""

MAX_IN_FLIGHT = 1
"""Batches in flight at once; the next one fills up while one is in flight."""

MAX_FORGET = 100
"""Reply keys of earlier calls one call deletes at most (more wait for the next call)."""

WAIT_MARK = 30.0
"""Seconds a FETCH that found nothing marks its server as waiting (see ``BATCH``); longer
than any blocking FETCH, so a push in that time wakes it across servers."""

_Fetch = tuple[str, float, "asyncio.Future[Reservation | None]"]


@dataclass
class _Batch:
    """The operations of one round trip, grouped as the script wants them."""

    enqueues: dict[str, list[tuple[str, str, bytes]]] = field(default_factory=dict)
    enqueued: list[asyncio.Future[None]] = field(default_factory=list)
    acks: dict[str, list[tuple[str, asyncio.Future[Reservation | None]]]] = field(
        default_factory=dict
    )
    fails: list[tuple[list[str | bytes], asyncio.Future[bool]]] = field(default_factory=list)
    fetches: dict[tuple[str, ...], list[_Fetch]] = field(default_factory=dict)
    size: int = 0
    now: float = 0.0
    idle_until: float = 0.0

    def futures(self) -> list[asyncio.Future[Any]]:
        out: list[asyncio.Future[Any]] = list(self.enqueued)
        out += [fut for group in self.acks.values() for _, fut in group]
        out += [fut for _, fut in self.fails]
        out += [fut for group in self.fetches.values() for _, _, fut in group]
        return out

    def args(self, keys: Keys, origin: str) -> list[str | bytes]:
        """Return the script's ARGV (layout in ``BATCH``)."""
        total = sum(len(rows) for rows in self.enqueues.values())
        args: list[str | bytes] = [keys.queue_prefix, keys.queue_entries_prefix]
        args += [keys.available, origin, fmt_float(self.now), fmt_float(self.idle_until)]
        args.append(WORKING_SENTINEL)
        args += [str(len(self.enqueues)), str(total)]
        for queue, rows in self.enqueues.items():
            args += [queue, str(len(rows))]
            for row in rows:
                args += row
        args.append(str(len(self.acks)))
        for day, group in self.acks.items():
            args += [day, str(len(group))]
            args += [jid for jid, _ in group]
        args.append(str(len(self.fails)))
        for fail_args, _ in self.fails:
            args += fail_args
        args.append(str(len(self.fetches)))
        for queues, requests in self.fetches.items():
            args += [str(len(queues)), *queues, str(len(requests))]
            for wid, now, _ in requests:
                args += [wid, fmt_float(now)]
        return args

    def resolve(self, reply: Any) -> None:
        """Hand each operation its part of the script's reply."""
        _, acks, fails, fetches = cast("list[list[Any]]", reply)
        for pushed in self.enqueued:
            _set(pushed, None)
        i = 0
        for group in self.acks.values():
            for jid, acked in group:
                data, expires = acks[i], acks[i + 1]
                i += 2
                _set(acked, None if data is None else unpack_reservation(jid, data, float(expires)))
        for (_, failed), done in zip(self.fails, fails, strict=True):
            _set(failed, bool(done))
        i = 0
        for requests in self.fetches.values():
            for wid, now, fut in requests:
                jid, data, expires = fetches[i], fetches[i + 1], fetches[i + 2]
                i += 3
                if jid is None:
                    _set(fut, None)
                    continue
                entry, enqueued_at = unpack_entry(jid.decode(), data)
                reservation = Reservation(entry, enqueued_at or 0.0, now, float(expires), wid)
                _set(fut, reservation)

    def fail_all(self, exc: BaseException) -> None:
        for fut in self.futures():
            if not fut.done():
                error = exc if isinstance(exc, StorageError) else StorageError(f"redis: {exc}")
                if error is not exc:
                    error.__cause__ = exc
                fut.set_exception(error)


def _set(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():  # the caller may have been cancelled meanwhile
        fut.set_result(value)


class Batcher:
    """Gathers the store's hot operations into batches and runs them (see the module doc).

    Args:
        link: runs the ``BATCH`` script (set by the store when it opens).
        keys: the store's key names.
        origin: the store's id (published with pushes, marks its waiting FETCHes).
        max_ops: operations or entries per batch.
        max_in_flight: batches in flight at once.
    """

    def __init__(
        self,
        link: ScriptLink | None,
        keys: Keys,
        origin: str,
        *,
        max_ops: int = MAX_OPS,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self.link = link
        self._keys = keys
        self._origin = origin
        self.max_ops = max_ops
        self.max_in_flight = max_in_flight
        self._script_keys = [
            keys.seq,
            keys.queues,
            keys.paused,
            keys.working,
            keys.working_entries,
            keys.stats,
            keys.daily,
            keys.waiting,
        ]
        self._pending: deque[_Batch] = deque()
        self._calls = 0
        self._answered: list[str] = []
        """Reply keys of calls whose replies arrived: the next call deletes them."""
        self._in_flight = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0
        """Round trips made so far (diagnostics and tests)."""

    # -- the operations ------------------------------------------------------------------

    async def enqueue(self, entries: Sequence[Entry], now: float) -> None:
        """Put entries into their queues with ``enqueued_at = now``."""
        waits = []
        for start in range(0, len(entries), self.max_ops):
            chunk = entries[start : start + self.max_ops]
            batch = self._batch(len(chunk), now)
            for entry in chunk:
                band = str(9 - max(0, min(9, entry.priority)))
                row = (band, entry.jid, pack_entry(entry, now))
                batch.enqueues.setdefault(entry.queue, []).append(row)
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            batch.enqueued.append(fut)
            waits.append(fut)
        for fut in waits:
            await fut

    def ack(self, jid: str, now: float) -> asyncio.Future[Reservation | None]:
        """Release ``jid``'s reservation and count it processed; resolves to it or None."""
        batch = self._batch(1, now)
        fut: asyncio.Future[Reservation | None] = asyncio.get_running_loop().create_future()
        batch.acks.setdefault(utc_day(now), []).append((jid, fut))
        return fut

    def fail(self, jid: str, now: float, placement: Placement | None) -> asyncio.Future[bool]:
        """Release ``jid``'s reservation as failed and place the job (or discard it)."""
        batch = self._batch(1, now)
        args: list[str | bytes] = [jid, utc_day(now)]
        if placement is None:
            args += ["", "", "", ""]
        else:
            name = placement.set
            args += [self._keys.set(name), self._keys.set_entries(name)]
            args += [fmt_float(placement.score), pack_entry(placement.entry)]
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        batch.fails.append((args, fut))
        return fut

    def fetch(
        self, queues: Sequence[str], now: float, wid: str
    ) -> asyncio.Future[Reservation | None]:
        """Reserve the next job of the first non-empty unpaused queue, or None."""
        batch = self._batch(1, now)
        batch.idle_until = max(batch.idle_until, now + WAIT_MARK)
        fut: asyncio.Future[Reservation | None] = asyncio.get_running_loop().create_future()
        batch.fetches.setdefault(tuple(queues), []).append((wid, now, fut))
        return fut

    # -- batching ------------------------------------------------------------------------

    def _batch(self, weight: int, now: float) -> _Batch:
        pending = self._pending
        if not pending or pending[-1].size + weight > self.max_ops:
            pending.append(_Batch())
        batch = pending[-1]
        batch.size += weight
        batch.now = max(batch.now, now)
        if not self._scheduled and self._in_flight < self.max_in_flight:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start)
        return batch

    def _start(self) -> None:
        self._scheduled = False
        while self._pending and self._in_flight < self.max_in_flight:
            batch = self._pending.popleft()
            self._in_flight += 1
            self._send(batch)

    def _send(self, batch: _Batch) -> None:
        link = self.link
        assert link is not None, "the store is not open"
        self._calls += 1
        reply_key = self._keys.batch_reply(f"{self._origin}:{self._calls}")
        forget, self._answered = self._answered[:MAX_FORGET], self._answered[MAX_FORGET:]
        keys = [*self._script_keys, reply_key, *forget]
        args = batch.args(self._keys, self._origin)

        def answered(reply: Any, error: BaseException | None) -> None:
            if error is None:
                self._answered.append(reply_key)
                self._finish(batch, reply, None)
            else:  # NOSCRIPT or a lost connection: the link's rules, in a task
                self._spawn(batch, link.recover(keys, args, error), reply_key)

        if not link.send(keys, args, answered):
            self._spawn(batch, link(keys, args), reply_key)  # (re)connect first

    def _spawn(self, batch: _Batch, call: Awaitable[Any], reply_key: str) -> None:
        task = asyncio.get_running_loop().create_task(self._wait(batch, call, reply_key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _wait(self, batch: _Batch, call: Awaitable[Any], reply_key: str) -> None:
        try:
            reply = await call
        except BaseException as exc:  # every waiting operation gets the error
            self._finish(batch, None, exc)
            if not isinstance(exc, Exception):
                raise
        else:
            self._answered.append(reply_key)
            self._finish(batch, reply, None)

    def _finish(self, batch: _Batch, reply: Any, error: BaseException | None) -> None:
        try:
            if error is not None:
                batch.fail_all(error)
            else:
                try:
                    batch.resolve(reply)
                except Exception as exc:  # a damaged entry: fail the rest, not the loop
                    batch.fail_all(exc)
        finally:
            self.batches += 1
            self._in_flight -= 1
            if self._pending and not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._start)
