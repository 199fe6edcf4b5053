"""The Lua scripts of the Redis store: every multi-step change runs as one script.

A script runs atomically in Redis, so two servers sharing one Redis never hand out the
same job (FETCH pops and reserves in one step) and never lose one (every move removes from
one place and adds to another in one step). Scripts never decode job JSON (cjson would
round large integers); they read only the packed header described in :mod:`keys`.
Dynamic keys (a queue's zset and hash) are built from prefixes passed in ARGV, so the names
still come from :mod:`werk.storage.redis.keys` alone.
"""

from __future__ import annotations

_HELPERS = """
local BAND = 562949953421312  -- 2^49, keys.PRIORITY_BAND
local function fmt(n) return string.format('%.17g', n) end
local function header(v)
  -- returns priority, reserve_for, queue of a packed entry
  local pri, rf, _, ql, pos = string.match(v, '^(%-?%d+)|(%d+)|([^|]*)|(%d+)|%d+|()')
  return tonumber(pri), rf, string.sub(v, pos, pos + tonumber(ql) - 1)
end
local function enqueue_packed(qp, qep, seqkey, jid, v, now, names, seen)
  -- put packed entry v (any enqueued_at) into its queue with enqueued_at = now
  local pri, _, q = header(v)
  pri = math.max(0, math.min(9, pri))
  local head, tail = string.match(v, '^(%-?%d+|%d+|)[^|]*(|.*)$')
  local seq = redis.call('INCR', seqkey)
  redis.call('ZADD', qp .. q, fmt((9 - pri) * BAND + seq), jid)
  redis.call('HSET', qep .. q, jid, head .. now .. tail)
  if not seen[q] then seen[q] = true; names[#names + 1] = q end
end
local function announce(known, channel, origin, names)
  if #names == 0 then return end
  redis.call('SADD', known, unpack(names))
  redis.call('PUBLISH', channel, cjson.encode({o = origin, q = names}))
end
"""

ENQUEUE = (
    _HELPERS
    + """
-- KEYS: seq, queues.  ARGV: qprefix, qeprefix, channel, origin, now, then jid, packed pairs
local names, seen = {}, {}
for i = 6, #ARGV, 2 do
  enqueue_packed(ARGV[1], ARGV[2], KEYS[1], ARGV[i], ARGV[i + 1], ARGV[5], names, seen)
end
announce(KEYS[2], ARGV[3], ARGV[4], names)
return #names
"""
)

FETCH = """
-- KEYS: paused, working, working:e.  ARGV: qprefix, qeprefix, now, wid, queue names...
for i = 5, #ARGV do
  local q = ARGV[i]
  if redis.call('SISMEMBER', KEYS[1], q) == 0 then
    while true do
      local top = redis.call('ZPOPMIN', ARGV[1] .. q)
      local jid = top[1]
      if not jid then break end
      local v = redis.call('HGET', ARGV[2] .. q, jid)
      if v then
        redis.call('HDEL', ARGV[2] .. q, jid)
        local rf = string.match(v, '^%-?%d+|(%d+)|')
        local exp = string.format('%.17g', tonumber(ARGV[3]) + tonumber(rf))
        local r = ARGV[3] .. '|' .. #ARGV[4] .. '|' .. ARGV[4] .. v
        redis.call('ZADD', KEYS[2], exp, jid)
        redis.call('HSET', KEYS[3], jid, r)
        return {jid, r, exp}
      end
    end
  end
end
return false
"""

ACK = """
-- KEYS: working, working:e, stats, daily.  ARGV: jid, day
local v = redis.call('HGET', KEYS[2], ARGV[1])
if not v then return false end
local exp = redis.call('ZSCORE', KEYS[1], ARGV[1]) or '0'
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'processed', 1)
redis.call('HINCRBY', KEYS[4], ARGV[2] .. ':processed', 1)
return {v, exp}
"""

FAIL = """
-- KEYS: working, working:e, stats, daily[, placement zset, placement hash]
-- ARGV: jid, day, deadline ('' for FAIL; for expire the reservation must be <= it)
--       [, placement score, packed entry]
local jid = ARGV[1]
local s = redis.call('ZSCORE', KEYS[1], jid)
if not s then return 0 end
if ARGV[3] ~= '' and tonumber(s) > tonumber(ARGV[3]) then return 0 end
redis.call('ZREM', KEYS[1], jid)
redis.call('HDEL', KEYS[2], jid)
redis.call('HINCRBY', KEYS[3], 'processed', 1)
redis.call('HINCRBY', KEYS[3], 'failures', 1)
redis.call('HINCRBY', KEYS[4], ARGV[2] .. ':processed', 1)
redis.call('HINCRBY', KEYS[4], ARGV[2] .. ':failures', 1)
if KEYS[5] then
  redis.call('ZADD', KEYS[5], ARGV[4], jid)
  redis.call('HSET', KEYS[6], jid, ARGV[5])
end
return 1
"""

EXTEND = """
-- KEYS: working.  ARGV: jid, expires_at
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s then return 0 end
if tonumber(ARGV[2]) > tonumber(s) then redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1]) end
return 1
"""

MOVE = (
    _HELPERS
    + """
-- Move entries of a set into their queues (move_due, requeue).
-- KEYS: set zset, set hash, seq, queues
-- ARGV: qprefix, qeprefix, channel, origin, now, mode ('due'|'all'|'list'), limit, jids...
local jids
if ARGV[6] == 'due' then
  jids = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[5], 'BYSCORE', 'LIMIT', 0, ARGV[7])
elseif ARGV[6] == 'all' then
  jids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[7]) - 1)
else
  jids = {}
  for i = 8, #ARGV do jids[#jids + 1] = ARGV[i] end
end
local names, seen, moved = {}, {}, 0
for _, jid in ipairs(jids) do
  local v = redis.call('HGET', KEYS[2], jid)
  if v then
    redis.call('ZREM', KEYS[1], jid)
    redis.call('HDEL', KEYS[2], jid)
    enqueue_packed(ARGV[1], ARGV[2], KEYS[3], jid, v, ARGV[5], names, seen)
    moved = moved + 1
  end
end
announce(KEYS[4], ARGV[3], ARGV[4], names)
return {moved, unpack(names)}
"""
)

SET_MOVE = """
-- KEYS: source zset, source hash, target zset, target hash.  ARGV: score, jids...
local moved = 0
for i = 2, #ARGV do
  local v = redis.call('HGET', KEYS[2], ARGV[i])
  if v then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
    redis.call('ZADD', KEYS[3], ARGV[1], ARGV[i])
    redis.call('HSET', KEYS[4], ARGV[i], v)
    moved = moved + 1
  end
end
return moved
"""

REMOVE_BEFORE = """
-- KEYS: zset, hash.  ARGV: now, limit
local jids = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[2])
for _, jid in ipairs(jids) do
  redis.call('ZREM', KEYS[1], jid)
  redis.call('HDEL', KEYS[2], jid)
end
return #jids
"""

READ = """
-- A page of a zset with each member's score and hash value: flat {jid, score, value, ...}.
-- KEYS: zset, hash.  ARGV: 'rank' start stop rev | 'score' min max rev offset limit
local cmd = {'ZRANGE', KEYS[1], ARGV[2], ARGV[3]}
if ARGV[1] == 'score' then cmd[#cmd + 1] = 'BYSCORE' end
if ARGV[4] == '1' then cmd[#cmd + 1] = 'REV' end
if ARGV[1] == 'score' then
  cmd[#cmd + 1] = 'LIMIT'; cmd[#cmd + 1] = ARGV[5]; cmd[#cmd + 1] = ARGV[6]
end
cmd[#cmd + 1] = 'WITHSCORES'
local found = redis.call(unpack(cmd))
local out = {}
for i = 1, #found, 2 do
  local v = redis.call('HGET', KEYS[2], found[i])
  if v then
    out[#out + 1] = found[i]; out[#out + 1] = found[i + 1]; out[#out + 1] = v
  end
end
return out
"""

FILTER = """
-- One chunk of a filtered set listing, matched inside Redis so that only the matches
-- travel. KEYS: zset, hash. ARGV: start stop rev queue jobtype text want_rows
-- (queue/jobtype/text '' = any). Returns {scanned, matched, jid, score, value, ...}; the
-- rows only when want_rows is '1'. A packed value is
-- "priority|reserve_for|enqueued_at|len(queue)|len(jobtype)|<queue><jobtype><body>".
local cmd = {'ZRANGE', KEYS[1], ARGV[1], ARGV[2]}
if ARGV[3] == '1' then cmd[#cmd + 1] = 'REV' end
cmd[#cmd + 1] = 'WITHSCORES'
local found = redis.call(unpack(cmd))
local want_q, want_t, text, rows = ARGV[4], ARGV[5], ARGV[6], ARGV[7] == '1'
local out = {#found / 2, 0}
for i = 1, #found, 2 do
  local v = redis.call('HGET', KEYS[2], found[i])
  if v then
    local p1 = string.find(v, '|', 1, true)
    local p2 = string.find(v, '|', p1 + 1, true)
    local p3 = string.find(v, '|', p2 + 1, true)
    local p4 = string.find(v, '|', p3 + 1, true)
    local p5 = string.find(v, '|', p4 + 1, true)
    local qlen = tonumber(string.sub(v, p3 + 1, p4 - 1))
    local tlen = tonumber(string.sub(v, p4 + 1, p5 - 1))
    local q = string.sub(v, p5 + 1, p5 + qlen)
    local t = string.sub(v, p5 + qlen + 1, p5 + qlen + tlen)
    local ok = (want_q == '' or q == want_q) and (want_t == '' or t == want_t)
    if ok and text ~= '' then
      ok = string.find(v, text, p5 + qlen + tlen + 1, true) ~= nil
    end
    if ok then
      out[2] = out[2] + 1
      if rows then
        out[#out + 1] = found[i]; out[#out + 1] = found[i + 1]; out[#out + 1] = v
      end
    end
  end
end
return out
"""

OLDEST = """
-- The oldest enqueued_at per queue ('' if empty): the head of each priority band.
-- ARGV: qprefix, qeprefix, queue names...
local BAND = 562949953421312
local out = {}
for i = 3, #ARGV do
  local best = ''
  for band = 0, 9 do
    local lo = string.format('%.17g', band * BAND)
    local hi = '(' .. string.format('%.17g', (band + 1) * BAND)
    local top = redis.call('ZRANGE', ARGV[1] .. ARGV[i], lo, hi, 'BYSCORE', 'LIMIT', 0, 1)
    if top[1] then
      local v = redis.call('HGET', ARGV[2] .. ARGV[i], top[1])
      local enq = v and string.match(v, '^%-?%d+|%d+|([^|]*)|') or ''
      if enq ~= '' and (best == '' or tonumber(enq) < tonumber(best)) then best = enq end
    end
  end
  out[#out + 1] = best
end
return out
"""

PAUSE = """
-- KEYS: queues, paused.  ARGV: names (none: every known queue)
if #ARGV == 0 then return redis.call('SUNIONSTORE', KEYS[2], KEYS[2], KEYS[1]) end
for _, q in ipairs(ARGV) do
  if redis.call('SISMEMBER', KEYS[1], q) == 1 then redis.call('SADD', KEYS[2], q) end
end
return 0
"""

RESUME = """
-- KEYS: queues, paused.  ARGV: channel, origin, names (none: every queue)
local names = {}
if #ARGV == 2 then
  names = redis.call('SMEMBERS', KEYS[1])
  redis.call('DEL', KEYS[2])
else
  for i = 3, #ARGV do
    redis.call('SREM', KEYS[2], ARGV[i])
    if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 1 then names[#names + 1] = ARGV[i] end
  end
end
if #names > 0 then redis.call('PUBLISH', ARGV[1], cjson.encode({o = ARGV[2], q = names})) end
return #names
"""

REMOVE_QUEUES = """
-- KEYS: queues, paused.  ARGV: qprefix, qeprefix, names (none: every known queue)
local names = {}
if #ARGV == 2 then
  names = redis.call('SMEMBERS', KEYS[1])
else
  for i = 3, #ARGV do names[#names + 1] = ARGV[i] end
end
for _, q in ipairs(names) do
  redis.call('UNLINK', ARGV[1] .. q, ARGV[2] .. q)
  redis.call('SREM', KEYS[1], q)
  redis.call('SREM', KEYS[2], q)
end
return #names
"""

FLUSH = """
-- KEYS: queues, counts, limiters, then every fixed key to delete.
-- ARGV: qprefix, qeprefix, count prefix, limiter hash prefix, limiter zset prefix
for _, q in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  redis.call('UNLINK', ARGV[1] .. q, ARGV[2] .. q)
end
for _, c in ipairs(redis.call('SMEMBERS', KEYS[2])) do redis.call('UNLINK', ARGV[3] .. c) end
for _, n in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  redis.call('UNLINK', ARGV[4] .. n, ARGV[5] .. n)
end
redis.call('UNLINK', unpack(KEYS))
return 1
"""
