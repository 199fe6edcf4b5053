"""Every Redis key name of the Redis store, in one place (arq's ``constants.py`` idea).

All keys live under one prefix ``P`` (default ``werk:``, set with ``?prefix=`` in the URL),
so several Werk installations can share one Redis database, and several Werk servers with
the *same* prefix share one job store. With ``P`` = ``werk:``:

======================  ======  ===========================================================
key                     type    contents
======================  ======  ===========================================================
``P q:<queue>``         zset    member jid, score ``(9 - priority) * 2**49 + seq``: fetch
                                order (ZPOPMIN), priority first, then FIFO by ``seq``
``P qe:<queue>``        hash    jid -> packed entry with its ``enqueued_at``
``P seq``               string  global INCR sequence for FIFO order (< 2**49, see below)
``P queues``            set     known queue names
``P paused``            set     paused queue names
``P working``           zset    member jid, score = reservation expiry (Unix seconds)
``P working:e``         hash    jid -> packed reservation (reserved_at, wid, packed entry)
``P set:<name>``        zset    member jid, score = due / retry / expiry time, ``<name>`` one
                                of ``scheduled``, ``retries``, ``dead``
``P set:<name>:e``      hash    jid -> packed entry (no ``enqueued_at``)
``P stats``             hash    lifetime ``processed`` and ``failures``
``P daily``             hash    ``YYYY-MM-DD:processed`` / ``YYYY-MM-DD:failures`` (UTC)
``P processes``         hash    wid -> JSON of a worker :class:`~werk.storage.base.Process`
``P available``         pubsub  channel: JSON ``{"o": origin, "q": [queues]}`` after jobs
                                may have become fetchable (move, requeue, resume; a push
                                only while another server has a FETCH waiting)
``P waiting``           hash    server origin -> Unix time until which it has FETCHes
                                waiting (set by a FETCH that found nothing)
``P batch:<token>``     string  the reply of one batch script call (msgpack), kept until
                                the next batch (or 10 minutes): the call sent again after
                                a lost connection returns it and changes nothing
``P locks``             hash    lock key -> owner (:meth:`Store.claim`)
``P locks:exp``         zset    member lock key, score = its expiry
``P records``           hash    record key -> value (:meth:`Store.put_record`)
``P records:keys``      zset    every record key, score 0: listing by prefix (BYLEX)
``P records:exp``       zset    member record key with a ttl, score = its expiry
``P count:<key>``       hash    counter name -> integer (:meth:`Store.add_counts`)
``P counts``            set     the keys that have a ``count:`` hash
``P lim:<name>``        hash    a limiter: ``kind``, ``limit``, ``period``, ``start``,
                                ``level``, ``seq``
``P limz:<name>``       zset    ``concurrent``: holder -> hold expiry; ``window``:
                                ``<holder>:<seq>`` -> time of use
``P limiters``          set     the names that have ``lim:``/``limz:`` keys
======================  ======  ===========================================================

(``P q:x`` means the prefix immediately followed by ``q:x``, e.g. ``werk:q:default``.)
``q:`` and ``qe:`` differ before the queue name starts, so no queue name (even one holding
``:``) can make one queue's key collide with another key.

Packed entry (bytes; job JSON is never decoded in Lua, because cjson loses integer
precision): ``<priority>|<reserve_for>|<enqueued_at>|<len queue>|<len jobtype>|`` followed
by the queue name, the jobtype and the body, lengths in UTF-8 bytes. ``enqueued_at`` is a
Python ``repr(float)`` (exact round trip) or empty outside a queue.
Packed reservation: ``<reserved_at>|<len wid>|<wid><packed entry>``.

Score bound: ``seq`` stays below 2**49 (5.6e14 pushes, 178 years at 100k pushes/s), and
``(9 - priority)`` is 0..9 after clamping priority to 0..9, so a score is below
``10 * 2**49 < 2**53`` and exact in a double. For Redis Cluster, use a prefix with a hash
tag (``{werk}:``) so that every key lands in one slot.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "werk:"
"""The key prefix when the URL names none."""

PRIORITY_BAND = 2**49
"""Score distance between two priorities in a queue zset; ``seq`` must stay below it."""

SET_KEY_NAMES = ("scheduled", "retries", "dead")

WORKING_SENTINEL = "\x00werk: keeps the working zset a skiplist (never a jid)".ljust(65, "-")
"""A member of ``P working`` with score ``+inf``, longer than Redis' default
``zset-max-listpack-value`` (64): it keeps the zset in its skiplist encoding, where an insert
costs O(log n) instead of a scan that parses every score. Readers skip it: it has no entry
in ``P working:e`` and no reservation expires at ``+inf``."""


@dataclass(frozen=True, slots=True)
class Keys:
    """The key names under one prefix."""

    prefix: str = DEFAULT_PREFIX

    @property
    def queue_prefix(self) -> str:
        """Prefix of the queue zsets; the queue name follows."""
        return f"{self.prefix}q:"

    @property
    def queue_entries_prefix(self) -> str:
        """Prefix of the queue entry hashes; the queue name follows."""
        return f"{self.prefix}qe:"

    def queue(self, name: str) -> str:
        """Return the zset key of a queue (fetch order)."""
        return self.queue_prefix + name

    def queue_entries(self, name: str) -> str:
        """Return the hash key of a queue's entries."""
        return self.queue_entries_prefix + name

    def set(self, name: str) -> str:
        """Return the zset key of a time-ordered set (``scheduled``, ``retries``, ``dead``)."""
        return f"{self.prefix}set:{name}"

    def set_entries(self, name: str) -> str:
        """Return the hash key of a time-ordered set's entries."""
        return f"{self.prefix}set:{name}:e"

    @property
    def seq(self) -> str:
        """The global FIFO sequence counter."""
        return f"{self.prefix}seq"

    @property
    def queues(self) -> str:
        """The set of known queue names."""
        return f"{self.prefix}queues"

    @property
    def paused(self) -> str:
        """The set of paused queue names."""
        return f"{self.prefix}paused"

    @property
    def working(self) -> str:
        """The reservations zset, scored by expiry."""
        return f"{self.prefix}working"

    @property
    def working_entries(self) -> str:
        """The reservations hash (jid -> packed reservation)."""
        return f"{self.prefix}working:e"

    @property
    def stats(self) -> str:
        """The lifetime counters hash."""
        return f"{self.prefix}stats"

    @property
    def daily(self) -> str:
        """The per-UTC-day counters hash."""
        return f"{self.prefix}daily"

    @property
    def waiting(self) -> str:
        """The hash of servers with FETCHes waiting (origin -> until when)."""
        return f"{self.prefix}waiting"

    def batch_reply(self, token: str) -> str:
        """Where the batch script keeps the reply of the call ``token``."""
        return f"{self.prefix}batch:{token}"

    @property
    def processes(self) -> str:
        """The worker process records hash."""
        return f"{self.prefix}processes"

    @property
    def available(self) -> str:
        """The pub/sub channel announcing fetchable queues."""
        return f"{self.prefix}available"

    # -- coordination (werk.storage.redis.coord) ----------------------------------------

    @property
    def locks(self) -> str:
        """The locks hash (key -> owner)."""
        return f"{self.prefix}locks"

    @property
    def lock_expiry(self) -> str:
        """The locks' expiry zset."""
        return f"{self.prefix}locks:exp"

    @property
    def records(self) -> str:
        """The records hash (key -> value)."""
        return f"{self.prefix}records"

    @property
    def record_keys(self) -> str:
        """Every record key, all scored 0, for listing by prefix."""
        return f"{self.prefix}records:keys"

    @property
    def record_expiry(self) -> str:
        """The expiry zset of records that have a ttl."""
        return f"{self.prefix}records:exp"

    @property
    def count_prefix(self) -> str:
        """Prefix of the counter hashes; the record key follows."""
        return f"{self.prefix}count:"

    @property
    def counts(self) -> str:
        """The set of keys that have counters."""
        return f"{self.prefix}counts"

    @property
    def limiter_prefix(self) -> str:
        """Prefix of the limiter state hashes; the limiter name follows."""
        return f"{self.prefix}lim:"

    @property
    def limiter_units_prefix(self) -> str:
        """Prefix of the limiter holder/use zsets; the limiter name follows."""
        return f"{self.prefix}limz:"

    @property
    def limiters(self) -> str:
        """The set of limiter names."""
        return f"{self.prefix}limiters"

    def flushed(self) -> list[str]:
        """Return the fixed keys :meth:`RedisStore.flush` deletes (queues, counter hashes
        and limiters come on top)."""
        keys = [self.seq, self.queues, self.paused, self.working, self.working_entries]
        for name in SET_KEY_NAMES:
            keys += [self.set(name), self.set_entries(name)]
        coordination = [self.locks, self.lock_expiry, self.records, self.record_keys]
        coordination += [self.record_expiry, self.counts, self.limiters]
        return [*keys, self.stats, self.daily, *coordination]
