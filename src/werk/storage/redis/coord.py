"""The coordination half of the Redis store: locks, records, counters and limiters.

Each operation is one Lua script, so it is atomic across every server sharing the prefix.
Times cross into Lua as exact text computed in Python (``now + ttl``, ``now - period``, a
bucket's interval start); Lua only compares them, except for the leaky bucket's drain,
which uses the same double arithmetic, in the same order, as the SQLite store. Scripts
return times as text too (Redis would truncate a Lua number to an integer). Keys: see
:mod:`werk.storage.redis.keys` (``locks``, ``records``, ``count:``, ``lim:``, ``limz:`` ...).
"""

from __future__ import annotations

from typing import Any, cast

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from werk.storage.base import LimitKind, LimitResult
from werk.storage.limits import (
    LEAK_EPSILON,
    PURGE,
    bucket_start,
    check_limits,
    leaky_level,
    units,
)
from werk.storage.redis.codec import fmt_float, wrap_errors
from werk.storage.redis.keys import Keys

_PURGE = """
local function purge(hkey, zkey, now, extra)
  -- delete up to PURGE members of hash hkey whose expiry (in zset zkey) is <= now
  local old = redis.call('ZRANGE', zkey, '-inf', now, 'BYSCORE', 'LIMIT', 0, PURGE)
  for _, k in ipairs(old) do
    redis.call('HDEL', hkey, k)
    redis.call('ZREM', zkey, k)
    if extra then redis.call('ZREM', extra, k) end
  end
end
""".replace("PURGE)", f"{PURGE})")

CLAIM = (
    _PURGE
    + """
-- KEYS: locks, locks:exp.  ARGV: key, owner, now, expires_at
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and cur ~= ARGV[2] then
  local exp = redis.call('ZSCORE', KEYS[2], ARGV[1])
  if exp and tonumber(exp) > tonumber(ARGV[3]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
purge(KEYS[1], KEYS[2], ARGV[3], nil)
return 1
"""
)

RELEASE = """
-- KEYS: locks, locks:exp.  ARGV: key, 'any' | 'owner', owner
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur or (ARGV[2] == 'owner' and cur ~= ARGV[3]) then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""

PUT_RECORD = (
    _PURGE
    + """
-- KEYS: records, records:keys, records:exp.  ARGV: key, value, expires_at ('' never), now
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[3], ARGV[1])
else
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
end
purge(KEYS[1], KEYS[3], ARGV[4], KEYS[2])
return 1
"""
)

GET_RECORDS = """
-- KEYS: records, records:keys, records:exp.  ARGV: now, 'key' k | 'range' min max
-- Returns flat {key, value, ...} of the unexpired records asked for, ordered by key.
local names
if ARGV[2] == 'key' then
  names = {ARGV[3]}
else
  names = redis.call('ZRANGE', KEYS[2], ARGV[3], ARGV[4], 'BYLEX')
end
local out = {}
for _, k in ipairs(names) do
  local v = redis.call('HGET', KEYS[1], k)
  local exp = redis.call('ZSCORE', KEYS[3], k)
  if v and not (exp and tonumber(exp) <= tonumber(ARGV[1])) then
    out[#out + 1] = k; out[#out + 1] = v
  end
end
return out
"""

DELETE_RECORD = """
-- KEYS: records, records:keys, records:exp, counts.  ARGV: key, count prefix
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('UNLINK', ARGV[2] .. ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
return 1
"""

ADD_COUNTS = """
-- KEYS: counts.  ARGV: count prefix, key, then name, delta pairs.  Returns HGETALL.
local h = ARGV[1] .. ARGV[2]
if #ARGV > 2 then redis.call('SADD', KEYS[1], ARGV[2]) end
for i = 3, #ARGV, 2 do redis.call('HINCRBY', h, ARGV[i], ARGV[i + 1]) end
return redis.call('HGETALL', h)
"""

LIMIT_ACQUIRE = """
-- KEYS: limiters.  ARGV: hash prefix, zset prefix, name, kind, limit, period, holder, now,
--   start (bucket: interval start, else now), now + period, now - period, rate, epsilon
-- Returns {acquired, held, text}: text is the earliest hold expiry (concurrent), the oldest
-- use (window), the interval start (bucket) or the level (leaky), as exact text.
local function fmt(n) return string.format('%.17g', n) end
local h, z = ARGV[1] .. ARGV[3], ARGV[2] .. ARGV[3]
local kind, limit, now = ARGV[4], tonumber(ARGV[5]), ARGV[8]
redis.call('SADD', KEYS[1], ARGV[3])
if redis.call('HGET', h, 'kind') ~= kind then  -- new, or its kind changed: start afresh
  redis.call('UNLINK', h, z)
  redis.call('HSET', h, 'kind', kind, 'start', ARGV[9], 'level', '0', 'seq', '0')
end
redis.call('HSET', h, 'limit', ARGV[5], 'period', ARGV[6])
if kind == 'concurrent' or kind == 'window' then
  redis.call('ZREMRANGEBYSCORE', z, '-inf', kind == 'concurrent' and now or ARGV[11])
  local held = redis.call('ZCARD', z)
  if kind == 'concurrent' and redis.call('ZSCORE', z, ARGV[7]) then
    redis.call('ZADD', z, ARGV[10], ARGV[7])
    return {1, held, ''}
  end
  if held < limit then
    if kind == 'window' then
      redis.call('ZADD', z, now, ARGV[7] .. ':' .. redis.call('HINCRBY', h, 'seq', 1))
    else
      redis.call('ZADD', z, ARGV[10], ARGV[7])
    end
    return {1, held + 1, ''}
  end
  return {0, held, redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')[2]}
end
local start, level = redis.call('HGET', h, 'start'), tonumber(redis.call('HGET', h, 'level'))
if kind == 'bucket' then
  if tonumber(ARGV[9]) > tonumber(start) then start, level = ARGV[9], 0 end
  local ok = 0
  if level < limit then level = level + 1; ok = 1 end
  redis.call('HSET', h, 'start', start, 'level', level)
  return {ok, level, start}
end
local t, last, elapsed = tonumber(now), tonumber(start), 0  -- leaky: as leaky_level()
if t > last then elapsed = t - last end
level = level - elapsed * tonumber(ARGV[12])
if not (level > 0) then level = 0 end
if t > last then last = t end
local ok = 0
if level + 1 <= limit + tonumber(ARGV[13]) then level = level + 1; ok = 1 end
redis.call('HSET', h, 'start', fmt(last), 'level', fmt(level))
return {ok, 0, fmt(level)}
"""

LIMIT_RELEASE = """
-- ARGV: hash prefix, zset prefix, name, holder
if redis.call('HGET', ARGV[1] .. ARGV[3], 'kind') ~= 'concurrent' then return 0 end
return redis.call('ZREM', ARGV[2] .. ARGV[3], ARGV[4])
"""

LIMIT_STATUS = """
-- ARGV: hash prefix, zset prefix, name, now.  Returns {} or
-- {kind, limit, period, start, level, holders (concurrent) or uses in the window}
local h, z = ARGV[1] .. ARGV[3], ARGV[2] .. ARGV[3]
local kind = redis.call('HGET', h, 'kind')
if not kind then return {} end
local f = redis.call('HMGET', h, 'limit', 'period', 'start', 'level')
local n = 0
if kind == 'concurrent' then
  n = redis.call('ZCOUNT', z, '(' .. ARGV[4], '+inf')
elseif kind == 'window' then
  local cutoff = string.format('%.17g', tonumber(ARGV[4]) - tonumber(f[2]))
  n = redis.call('ZCOUNT', z, '(' .. cutoff, '+inf')
end
return {kind, f[1], f[2], f[3], f[4], n}
"""

_SCRIPTS = {
    "coord_claim": CLAIM,
    "coord_release": RELEASE,
    "coord_put_record": PUT_RECORD,
    "coord_get_records": GET_RECORDS,
    "coord_delete_record": DELETE_RECORD,
    "coord_add_counts": ADD_COUNTS,
    "coord_limit_acquire": LIMIT_ACQUIRE,
    "coord_limit_release": LIMIT_RELEASE,
    "coord_limit_status": LIMIT_STATUS,
}


def lex_range(prefix: str) -> tuple[bytes, bytes]:
    """Return the ZRANGE BYLEX bounds of every member starting with ``prefix``.

    Members are UTF-8, which never holds the byte 0xFF, so ``prefix + 0xFF`` bounds them.
    """
    if not prefix:
        return b"-", b"+"
    raw = prefix.encode()
    return b"[" + raw, b"(" + raw + b"\xff"


def _pairs(found: Any) -> list[tuple[str, bytes]]:
    flat = cast("list[bytes]", found)
    return [(flat[i].decode(), flat[i + 1]) for i in range(0, len(flat), 2)]


class RedisCoord:
    """The coordination methods of :class:`~werk.storage.redis.store.RedisStore` (see the
    module docstring); its scripts are registered on first use."""

    _redis: aioredis.Redis
    _scripts: dict[str, AsyncScript]
    keys: Keys

    async def _coord(self, name: str, keys: list[str], args: list[str | bytes]) -> Any:
        script = self._scripts.get(name)
        if script is None:  # the store's own scripts are reloaded on open; ours join them
            script = self._scripts[name] = self._redis.register_script(_SCRIPTS[name])
        return await script(keys=keys, args=args)

    @wrap_errors
    async def claim(self, key: str, owner: str, ttl: float, now: float) -> bool:
        """Take (or extend) the lock ``key`` for ``owner`` until ``now + ttl``."""
        k = self.keys
        args: list[str | bytes] = [key, owner, fmt_float(now), fmt_float(now + ttl)]
        return bool(await self._coord("coord_claim", [k.locks, k.lock_expiry], args))

    @wrap_errors
    async def release(self, key: str, owner: str | None) -> bool:
        """Drop the lock ``key`` if ``owner`` holds it (``None``: whoever holds it)."""
        k = self.keys
        args: list[str | bytes] = [key, "any", ""] if owner is None else [key, "owner", owner]
        return bool(await self._coord("coord_release", [k.locks, k.lock_expiry], args))

    @wrap_errors
    async def put_record(self, key: str, value: bytes, ttl: float | None, now: float) -> None:
        """Store ``value`` under ``key`` until ``now + ttl`` (forever for ``None``)."""
        until = "" if ttl is None else fmt_float(now + ttl)
        args: list[str | bytes] = [key, bytes(value), until, fmt_float(now)]
        await self._coord("coord_put_record", self._record_keys(), args)

    def _record_keys(self) -> list[str]:
        return [self.keys.records, self.keys.record_keys, self.keys.record_expiry]

    @wrap_errors
    async def get_record(self, key: str, now: float) -> bytes | None:
        """Return the value under ``key`` unless absent or expired."""
        args: list[str | bytes] = [fmt_float(now), "key", key]
        found = _pairs(await self._coord("coord_get_records", self._record_keys(), args))
        return found[0][1] if found else None

    @wrap_errors
    async def delete_record(self, key: str) -> None:
        """Delete the record ``key`` and its counters."""
        keys = [*self._record_keys(), self.keys.counts]
        await self._coord("coord_delete_record", keys, [key, self.keys.count_prefix])

    @wrap_errors
    async def records(self, prefix: str, now: float) -> list[tuple[str, bytes]]:
        """Return every unexpired ``(key, value)`` whose key starts with ``prefix``."""
        low, high = lex_range(prefix)
        args: list[str | bytes] = [fmt_float(now), "range", low, high]
        return _pairs(await self._coord("coord_get_records", self._record_keys(), args))

    @wrap_errors
    async def add_counts(self, key: str, deltas: dict[str, int]) -> dict[str, int]:
        """Add ``deltas`` to the counters of ``key``; return all of them after."""
        args: list[str | bytes] = [self.keys.count_prefix, key]
        for name, delta in deltas.items():
            args += [name, str(int(delta))]
        found = _pairs(await self._coord("coord_add_counts", [self.keys.counts], args))
        return {name: int(value) for name, value in sorted(found)}

    def _limiter_args(self, name: str) -> list[str | bytes]:
        return [self.keys.limiter_prefix, self.keys.limiter_units_prefix, name]

    @wrap_errors
    async def limit_acquire(
        self,
        name: str,
        kind: LimitKind,
        limit: int,
        period: float,
        holder: str,
        now: float,
    ) -> LimitResult:
        """Try to take one unit of the limiter ``name`` for ``holder``.

        Raises:
            ValueError: ``limit`` is below 1 or ``period`` is not positive.
        """
        check_limits(limit, period)
        rate = limit / period
        start = bucket_start(now, period) if kind == "bucket" else now
        times = (now, start, now + period, now - period, rate, LEAK_EPSILON)
        args = [*self._limiter_args(name), kind, str(limit), fmt_float(period), holder]
        args += [fmt_float(t) for t in times]
        found = await self._coord("coord_limit_acquire", [self.keys.limiters], args)
        ok, held, text = cast("list[Any]", found)
        if kind == "leaky":
            level = float(text)
            retry = 0.0 if ok else (level + 1 - limit) / rate
            return LimitResult(bool(ok), retry, units(level))
        if ok:
            return LimitResult(True, 0.0, int(held))
        at = float(text) if kind == "concurrent" else float(text) + period
        return LimitResult(False, at - now, int(held))

    @wrap_errors
    async def limit_release(self, name: str, holder: str) -> bool:
        """Give back ``holder``'s unit of a ``concurrent`` limiter."""
        args = [*self._limiter_args(name), holder]
        return bool(await self._coord("coord_limit_release", [], args))

    @wrap_errors
    async def limit_status(self, name: str, now: float) -> int:
        """Return how many units of limiter ``name`` count against it at ``now``."""
        args = [*self._limiter_args(name), fmt_float(now)]
        found = cast("list[Any]", await self._coord("coord_limit_status", [], args))
        if not found:
            return 0
        kind, limit, period, start, level = (v.decode() for v in found[:5])
        if kind in ("concurrent", "window"):
            return int(found[5])
        if kind == "bucket":
            current = bucket_start(now, float(period))
            return int(float(level)) if current <= float(start) else 0
        rate = int(limit) / float(period)
        return units(leaky_level(float(level), float(start), now, rate)[0])
