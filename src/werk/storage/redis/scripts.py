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
  -- A jid already waiting in q is a second delivery (Faktory's rule): its own member.
  local member = jid
  if redis.call('HEXISTS', qep .. q, jid) == 1 then member = jid .. '\0' .. seq end
  redis.call('ZADD', qp .. q, fmt((9 - pri) * BAND + seq), member)
  redis.call('HSET', qep .. q, member, head .. now .. tail)
  if not seen[q] then seen[q] = true; names[#names + 1] = q end
end
local function announce(known, channel, origin, names)
  if #names == 0 then return end
  redis.call('SADD', known, unpack(names))
  redis.call('PUBLISH', channel, cjson.encode({o = origin, q = names}))
end
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
-- Returns the jids moved, in the listed order.
local moved = {}
for i = 2, #ARGV do
  local v = redis.call('HGET', KEYS[2], ARGV[i])
  if v then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
    redis.call('ZADD', KEYS[3], ARGV[1], ARGV[i])
    redis.call('HSET', KEYS[4], ARGV[i], v)
    moved[#moved + 1] = ARGV[i]
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

BATCH = """
-- Many PUSHes, ACKs, FAILs and FETCHes gathered from one event-loop turn, in one round
-- trip (werk.storage.redis.batch). Variadic commands (ZADD, HSET, HMGET, ZMSCORE, ZPOPMIN
-- with a count) keep the commands per job low.
-- KEYS: seq, queues, paused, working, working:e, stats, daily, waiting, this call's reply
--   key, then the reply keys of earlier calls whose replies arrived (deleted here)
-- ARGV: qprefix, qeprefix, channel, origin, now, wait_until, working sentinel, then four
--   sections:
--   enqueue: ngroups, total, then per group: queue, n, n x (band, jid, packed entry)
--   ack:     ndays, then per day: day, n, n x jid
--   fail:    n, then n x (jid, day, set zset ('' discard), set hash, score, packed entry)
--   fetch:   ngroups, then per group: nqueues, queues, nreq, nreq x (wid, now)
-- Returns {queues enqueued, acks {v|false, expiry|false ...}, fails {1|0 ...},
--   fetches {jid|false, v|false, expiry|false ...}} in the order of ARGV.
local BAND = 562949953421312
local function fmt(n) return string.format('%.17g', n) end
local qp, qep, origin, now = ARGV[1], ARGV[2], ARGV[4], tonumber(ARGV[5])
local i = 8
-- A call sent again after a lost connection may have run already (its reply was lost):
-- then its kept reply is the answer and nothing runs twice (no second copy of a pushed
-- job, no second job reserved for a FETCH while the first waits reserved for nobody).
-- The kept reply holds no job bodies (a second copy of every fetched job would cost Redis
-- memory, AOF and replica traffic): a FETCH's bodies are read back from the working hash,
-- where the first run put them ("reserved_at|len(wid)|wid" then the entry); a job no
-- longer there (the reaper took it back meanwhile) is answered as not found.
local kept = redis.call('GET', KEYS[9])
if kept then
  local reply = cmsgpack.unpack(kept)
  local f = reply[4]
  for j = 1, #f, 3 do
    if f[j] then
      local w = redis.call('HGET', KEYS[5], f[j])
      if w then
        local wlen, at = string.match(w, '^[^|]*|(%d+)|()')
        f[j + 1] = string.sub(w, at + tonumber(wlen))
      else
        f[j] = false; f[j + 1] = false; f[j + 2] = false
      end
    end
  end
  return reply
end

local names = {}
local ngroups, total = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
i = i + 2
if total > 0 then
  local seq = redis.call('INCRBY', KEYS[1], total) - total
  for _ = 1, ngroups do
    local q, n = ARGV[i], tonumber(ARGV[i + 1])
    i = i + 2
    local z, h, jids = {}, {}, {}
    for j = 1, n do jids[j] = ARGV[i + 3 * j - 2] end
    -- A jid already waiting in q (or twice in this batch) is one more delivery, as in
    -- Faktory: it gets a member of its own, jid NUL seq (FETCH hands out the jid).
    local present = redis.call('HMGET', qep .. q, unpack(jids))
    local here = {}
    for j = 1, n do
      seq = seq + 1
      local member = jids[j]
      if present[j] or here[member] then member = member .. '\0' .. seq end
      here[jids[j]] = true
      z[#z + 1] = fmt(tonumber(ARGV[i]) * BAND + seq); z[#z + 1] = member
      h[#h + 1] = member; h[#h + 1] = ARGV[i + 2]
      i = i + 3
    end
    redis.call('ZADD', qp .. q, unpack(z))
    redis.call('HSET', qep .. q, unpack(h))
    names[#names + 1] = q
  end
  redis.call('SADD', KEYS[2], unpack(names))
  -- Wake other servers only if one of them has a FETCH waiting (it marked itself).
  local waiting = redis.call('HGETALL', KEYS[8])
  for j = 1, #waiting, 2 do
    if waiting[j] ~= origin and tonumber(waiting[j + 1]) > now then
      redis.call('PUBLISH', ARGV[3], cjson.encode({o = origin, q = names}))
      break
    end
  end
end

local acks, seen = {}, {}
local ndays = tonumber(ARGV[i])
i = i + 1
for _ = 1, ndays do
  local day, n = ARGV[i], tonumber(ARGV[i + 1])
  local jids = {}
  for j = 1, n do jids[j] = ARGV[i + 1 + j] end
  i = i + 2 + n
  local vals = redis.call('HMGET', KEYS[5], unpack(jids))
  local exps = redis.call('ZMSCORE', KEYS[4], unpack(jids))
  local gone = {}
  for j = 1, n do
    local jid = jids[j]
    if vals[j] and not seen[jid] then
      seen[jid] = true
      gone[#gone + 1] = jid
      acks[#acks + 1] = vals[j]; acks[#acks + 1] = exps[j] or '0'
    else
      acks[#acks + 1] = false; acks[#acks + 1] = false
    end
  end
  if #gone > 0 then
    redis.call('ZREM', KEYS[4], unpack(gone))
    redis.call('HDEL', KEYS[5], unpack(gone))
    redis.call('HINCRBY', KEYS[6], 'processed', #gone)
    redis.call('HINCRBY', KEYS[7], day .. ':processed', #gone)
  end
end

local fails = {}
local nfails = tonumber(ARGV[i])
i = i + 1
for f = 1, nfails do
  local jid, day = ARGV[i], ARGV[i + 1]
  fails[f] = 0
  if redis.call('ZSCORE', KEYS[4], jid) then
    redis.call('ZREM', KEYS[4], jid)
    redis.call('HDEL', KEYS[5], jid)
    redis.call('HINCRBY', KEYS[6], 'processed', 1)
    redis.call('HINCRBY', KEYS[6], 'failures', 1)
    redis.call('HINCRBY', KEYS[7], day .. ':processed', 1)
    redis.call('HINCRBY', KEYS[7], day .. ':failures', 1)
    if ARGV[i + 2] ~= '' then
      redis.call('ZADD', ARGV[i + 2], ARGV[i + 4], jid)
      redis.call('HSET', ARGV[i + 3], jid, ARGV[i + 5])
    end
    fails[f] = 1
  end
  i = i + 6
end

local fetches, wz, wh, idle = {}, {}, {}, false
local nfetch = tonumber(ARGV[i])
i = i + 1
for _ = 1, nfetch do
  local nq = tonumber(ARGV[i])
  local queues = {}
  for j = 1, nq do queues[j] = ARGV[i + j] end
  local nreq = tonumber(ARGV[i + nq + 1])
  local base = i + nq + 2  -- request r: wid at base + 2(r-1), now after it
  i = base + 2 * nreq
  local got = 0
  for _, q in ipairs(queues) do
    if got >= nreq then break end
    if redis.call('SISMEMBER', KEYS[3], q) == 0 then
      while got < nreq do
        local want = nreq - got
        local top = redis.call('ZPOPMIN', qp .. q, want)
        if #top == 0 then break end
        local jids = {}
        for j = 1, #top, 2 do jids[#jids + 1] = top[j] end
        local vals = redis.call('HMGET', qep .. q, unpack(jids))
        local taken = {}
        for j = 1, #jids do
          local v = vals[j]
          if v then
            local r = base + 2 * got
            local wid, rnow = ARGV[r], ARGV[r + 1]
            local exp = fmt(tonumber(rnow) + tonumber(string.match(v, '^%-?%d+|(%d+)|')))
            local jid = string.match(jids[j], '^[^%z]*')  -- a second copy's member
            wz[#wz + 1] = exp; wz[#wz + 1] = jid
            wh[#wh + 1] = jid; wh[#wh + 1] = rnow .. '|' .. #wid .. '|' .. wid .. v
            taken[#taken + 1] = jids[j]
            fetches[#fetches + 1] = jid; fetches[#fetches + 1] = v
            fetches[#fetches + 1] = exp
            got = got + 1
          end
        end
        if #taken > 0 then redis.call('HDEL', qep .. q, unpack(taken)) end
        if #jids < want then break end
      end
    end
  end
  for _ = got + 1, nreq do
    fetches[#fetches + 1] = false; fetches[#fetches + 1] = false; fetches[#fetches + 1] = false
    idle = true
  end
end
if #wz > 0 then
  -- The sentinel (longer than zset-max-listpack-value) keeps the zset a skiplist: a small
  -- listpack zset parses every score on each insert, 4 us per job at 100 reserved.
  wz[#wz + 1] = '+inf'; wz[#wz + 1] = ARGV[7]
  redis.call('ZADD', KEYS[4], unpack(wz))
  redis.call('HSET', KEYS[5], unpack(wh))
end
-- A FETCH that found nothing will wait: mark this server as having waiters, so that
-- other servers publish their pushes (the mark expires by itself).
if idle then redis.call('HSET', KEYS[8], origin, ARGV[6]) end
-- Earlier calls' kept replies go last: DEL is a write that needs no memory, and once a
-- script has written, Redis no longer refuses its later writes for maxmemory (OOM), so a
-- DEL first would let a full Redis take every push.
if #KEYS > 9 then redis.call('DEL', unpack(KEYS, 10)) end
local bare = {}
for j = 1, #fetches, 3 do
  bare[j] = fetches[j]; bare[j + 1] = false; bare[j + 2] = fetches[j + 2]
end
redis.call('SET', KEYS[9], cmsgpack.pack({names, acks, fails, bare}), 'EX', 600)
return {names, acks, fails, fetches}
"""
