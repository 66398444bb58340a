"""The Lua scripts of :mod:`shared.harvest.limiter`, each run atomically by Redis.

Kept to the Lua 5.1/5.4 common subset (Redis runs 5.1, fakeredis' lupa 5.4): integer maths through
``math.floor``, times in integer milliseconds of Redis ``TIME`` (one clock for every worker host), members
made unique by a caller-supplied id. Every script starts with :data:`PRELUDE`, which reads the learned model
of one credential from its state hash.

Keys of one credential ``<p>`` (prefix ``ghx:rl:<client id>``):

- ``<p>:log`` ZSET of our sends (score = send ms);
- ``<p>:state`` HASH: the model (``limit``, ``lo``, ``hi``, ``lat``), the server's last word (``srv_rem``,
  ``srv_at``, ``srv_reset``), the spacing clock of sends ``gtat`` (and ``burst``, sends left of the burst
  a quiet credential may make), and the pacing clock of admitted work ``tat``;
- ``<p>:block`` exists while a 429's ``Retry-After`` runs;
- ``<p>:queue`` ZSET of parked items (score = order: ``<p>:seq``, plus an offset for enrichments),
  ``<p>:cost`` HASH item -> reserved requests.

Global: ``ghx:rl:keys`` (SET of credentials with parked items), ``ghx:rl:parked`` (SET of parked item ids).
"""

from __future__ import annotations

STATE_TTL_MS = 24 * 3600 * 1000
"""A credential's learned model is forgotten after a day without traffic (the first guess applies again)."""

PARTS_ORDER_OFFSET = 10**13
"""Added to a parked enrichment's order: every parked core record of a credential is released first."""

LUA_HELPERS = """
local function now_ms()
  local t = redis.call('TIME')
  return math.floor(tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000)
end
local function num(v)
  if v then return tonumber(v) end
  return nil
end
"""
"""Lua helpers every script of ours starts with: Redis's clock in ms (never a host's), a number or nil."""

PRELUDE = f"""
local STATE_TTL = {STATE_TTL_MS}
{LUA_HELPERS}-- The learned window (ms) and budget (requests per window) of the credential whose state is `state`.
local function model(state, guess_limit, guess_window, headroom)
  local f = redis.call('HMGET', state, 'limit', 'lo', 'hi', 'lat')
  local limit = num(f[1]) or guess_limit
  local lo = num(f[2]) or 0
  local hi = num(f[3])
  local window
  local learned = hi ~= nil and hi >= lo
  if learned then  -- with a margin for answers that travel at different speeds
    window = hi + math.max(math.floor(hi / 100), 2 * (num(f[4]) or 0))
  else
    window = math.max(guess_window, math.floor(lo * 1.1))
  end
  local budget = math.floor(limit * headroom)
  if budget < 1 then budget = 1 end
  return window, budget, learned
end
-- Milliseconds until the server has budget again by its own last word (0: no such wait). Its reset is
-- in whole seconds; once the window is learned, our log says to the millisecond when its oldest
-- counted request leaves it.
local function server_wait(log, state, now, window, learned)
  local s = redis.call('HMGET', state, 'srv_rem', 'srv_at', 'srv_reset', 'limit')
  local rem, at, reset, limit = num(s[1]), num(s[2]), num(s[3]), num(s[4])
  if not (rem and at and reset and now < reset) then return 0 end
  if rem - redis.call('ZCOUNT', log, '(' .. at, '+inf') > 0 then return 0 end
  local wait = reset - now
  if learned and limit and limit - rem >= 1 then
    local x = redis.call('ZREVRANGEBYSCORE', log, at, '-inf', 'WITHSCORES', 'LIMIT', limit - rem - 1, 1)
    if x[2] then wait = math.min(wait, math.floor(tonumber(x[2]) + window - now) + 1) end
  end
  if wait < 0 then return 0 end
  return wait
end
"""

ACQUIRE = (
    PRELUDE
    + """
-- KEYS: log, state, block. ARGV: guess_limit, guess_window_ms, headroom, member, advance (1: not reserved).
-- Returns {wait_ms, now_ms}: wait 0 means the send was taken and logged at now_ms.
local now = now_ms()
local blocked = redis.call('PTTL', KEYS[3])
if blocked > 0 then return {blocked, now} end
local window, budget, learned = model(KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
local per = window / budget
local retain = math.max(3 * window, 120000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - retain)
local count = redis.call('ZCOUNT', KEYS[1], '(' .. (now - window), '+inf')
-- never more than the budget in one window: our log knows when a send frees. Until the window is
-- learned, the server's own `remaining` (below) is the cap when it gives one: a guessed window too long
-- would otherwise stop every send for most of it, and nothing would be learned meanwhile.
local capped = learned or not redis.call('HGET', KEYS[2], 'srv_rem')
if capped and count >= budget then
  local nth = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. (now - window), '+inf',
    'WITHSCORES', 'LIMIT', count - budget, 1)
  return {math.floor(tonumber(nth[2]) + window - now) + 1, now}
end
-- our model has room but the server said it has none (a wrong guess, or another client): its reset rules
local sw = server_wait(KEYS[1], KEYS[2], now, window, learned)
if sw > 0 then return {sw, now} end
-- and spaced `per` apart (evenly spread sends are what the window is learned from); a credential quiet
-- for a minute (and two windows) may first send half its budget at once (a connect check, a small batch)
local burst = math.min(num(redis.call('HGET', KEYS[2], 'burst')) or 0, math.floor(budget / 2))
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if not last[2] or tonumber(last[2]) < now - math.max(60000, 2 * window) then burst = math.floor(budget / 2) end
local gtat = math.max(num(redis.call('HGET', KEYS[2], 'gtat')) or 0, now)
if gtat > now + 3 * per then  -- spaced for an older, slower model: not waited out
  gtat = now + 3 * per
  redis.call('HSET', KEYS[2], 'gtat', math.floor(gtat))
end
if burst > 0 then
  redis.call('HSET', KEYS[2], 'burst', burst - 1)
else
  -- two sends of slack
  if gtat - now > 2 * per then return {math.floor(gtat - now - 2 * per) + 1, now} end
  redis.call('HSET', KEYS[2], 'gtat', math.floor(gtat + per))
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], retain)
if ARGV[5] == '1' then
  local tat = math.max(num(redis.call('HGET', KEYS[2], 'tat')) or 0, now)
  redis.call('HSET', KEYS[2], 'tat', math.floor(tat + per))
end
redis.call('PEXPIRE', KEYS[2], STATE_TTL)
return {0, now}
"""
)

OBSERVE = (
    PRELUDE
    + """
-- KEYS: log, state. ARGV: sent_ms, limit, remaining, reset_in_ms (each -1 when absent), guess_window_ms.
local e = now_ms()
local sent = tonumber(ARGV[1])
local announced, remaining, reset_in = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local f = redis.call('HMGET', KEYS[2], 'limit', 'lo', 'hi', 'lat', 'srv_at')
local limit, lo, hi = num(f[1]), num(f[2]) or 0, num(f[3])
local lat = math.max(e - sent, math.floor((num(f[4]) or 0) * 0.99))
redis.call('HSET', KEYS[2], 'lat', lat)
if announced >= 1 then
  limit = announced
  redis.call('HSET', KEYS[2], 'limit', limit)
end
if remaining >= 0 then
  local reset_at = e + tonumber(ARGV[5])
  if reset_in >= 0 then reset_at = e + reset_in end
  if sent >= (num(f[5]) or 0) then  -- answers arrive out of order: keep the newest request's word
    redis.call('HSET', KEYS[2], 'srv_rem', remaining, 'srv_at', sent, 'srv_reset', reset_at)
  end
  if limit and limit - remaining >= 1 then
    local c = limit - remaining  -- requests the server counts in its window, this one included
    -- lower bound: the oldest counted request was sent no later than our c-th most recent send
    local x = redis.call('ZREVRANGEBYSCORE', KEYS[1], e, '-inf', 'WITHSCORES', 'LIMIT', c - 1, 1)
    if x[2] then
      local sample = sent - tonumber(x[2]) - lat
      if sample > lo then lo = sample end
    end
    -- upper bound: of our c most recent sends that surely arrived before this one, one was not counted
    local y = redis.call('ZREVRANGEBYSCORE', KEYS[1], sent - math.max(2 * lat, 50), '-inf',
      'WITHSCORES', 'LIMIT', c - 1, 1)
    if y[2] then
      local sample = e - tonumber(y[2])
      if sample >= lo and (not hi or sample < hi) then hi = sample end
    end
    redis.call('HSET', KEYS[2], 'lo', lo)
    if hi and hi >= lo then
      redis.call('HSET', KEYS[2], 'hi', hi)
    else
      redis.call('HDEL', KEYS[2], 'hi')
    end
  end
end
redis.call('PEXPIRE', KEYS[2], STATE_TTL)
return 1
"""
)

THROTTLED = (
    PRELUDE
    + """
-- KEYS: log, state, block. ARGV: member, retry_ms, guess_limit, guess_window_ms, headroom.
-- A 429: the request did not count; every worker waits Retry-After; a learned window was too generous.
redis.call('ZREM', KEYS[1], ARGV[1])
local retry = tonumber(ARGV[2])
if retry > redis.call('PTTL', KEYS[3]) then
  redis.call('SET', KEYS[3], 1, 'PX', retry)
end
local window, budget, learned = model(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
if learned then  -- a guess is no evidence: only a learned window is widened
  redis.call('HSET', KEYS[2], 'lo', window, 'hi', math.floor(window * 1.1))
end
redis.call('PEXPIRE', KEYS[2], STATE_TTL)
return 1
"""
)

ADMIT = (
    PRELUDE
    + """
-- KEYS: log, state, block, queue. ARGV: guess_limit, guess_window_ms, headroom, cost, horizon_ms.
-- Returns 1 when the cost was reserved and the item may run now (nothing of the credential is parked, no
-- stop is on, and the work reserved ahead stays within the horizon), else 0 (park it).
local now = now_ms()
local window, budget, learned = model(KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
local cost = tonumber(ARGV[4])
local per = window / budget
local horizon = tonumber(ARGV[5])
local tat = math.min(math.max(num(redis.call('HGET', KEYS[2], 'tat')) or 0, now), now + horizon)
if redis.call('ZCARD', KEYS[4]) > 0 or redis.call('PTTL', KEYS[3]) > 0 then return 0 end
if server_wait(KEYS[1], KEYS[2], now, window, learned) > 0 then return 0 end
if tat > now and tat + cost * per > now + horizon then return 0 end
redis.call('HSET', KEYS[2], 'tat', math.floor(tat + cost * per))
redis.call('PEXPIRE', KEYS[2], STATE_TTL)
return 1
"""
)

PARK = """
-- KEYS: queue, cost, seq, keys, parked. ARGV: credential, order_offset, item, cost, item, cost, ...
-- Parks the items in order (a per-credential sequence, so equal times keep their order); an item
-- parked already keeps its place.
local offset = tonumber(ARGV[2])
for i = 3, #ARGV, 2 do
  if not redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], offset + redis.call('INCR', KEYS[3]), ARGV[i])
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
    redis.call('SADD', KEYS[5], ARGV[i])
  end
end
redis.call('SADD', KEYS[4], ARGV[1])
return 1
"""

RELEASE = (
    PRELUDE
    + """
-- KEYS: log, state, block, queue, cost, keys, parked. ARGV: guess_limit, guess_window_ms, headroom,
-- max_items, credential, horizon_ms. Pops the parked items whose turn has come: {item, cost, ...}.
local now = now_ms()
local out = {}
if redis.call('ZCARD', KEYS[4]) == 0 then
  redis.call('SREM', KEYS[6], ARGV[5])
  return out
end
local window, budget, learned = model(KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
if redis.call('PTTL', KEYS[3]) > 0 or server_wait(KEYS[1], KEYS[2], now, window, learned) > 0 then return out end
local per = window / budget
-- work is admitted at most `horizon` ahead of the gate, so a released item never waits long for its
-- sends; when the learned rate changed, older reservations are forgotten rather than waited out
local horizon = tonumber(ARGV[6])
local tat = math.min(math.max(num(redis.call('HGET', KEYS[2], 'tat')) or 0, now), now + horizon)
local max_items = tonumber(ARGV[4])
while #out < 2 * max_items do
  local first = redis.call('ZRANGE', KEYS[4], 0, 0)
  if not first[1] then
    redis.call('SREM', KEYS[6], ARGV[5])
    break
  end
  local cost = num(redis.call('HGET', KEYS[5], first[1])) or 1
  if tat > now and tat + cost * per > now + horizon then break end
  tat = tat + cost * per
  redis.call('ZREM', KEYS[4], first[1])
  redis.call('HDEL', KEYS[5], first[1])
  redis.call('SREM', KEYS[7], first[1])
  out[#out + 1] = first[1]
  out[#out + 1] = cost
end
redis.call('HSET', KEYS[2], 'tat', math.floor(tat))
redis.call('PEXPIRE', KEYS[2], STATE_TTL)
return out
"""
)

SETTLE = (
    PRELUDE
    + """
-- KEYS: state. ARGV: unused requests, guess_limit, guess_window_ms, headroom.
-- Gives back reserved requests a run did not use, so the pacing clock does not drift ahead of the server.
local now = now_ms()
local tat = num(redis.call('HGET', KEYS[1], 'tat'))
if not tat or tat <= now then return 0 end
local window, budget = model(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
redis.call('HSET', KEYS[1], 'tat', math.floor(math.max(now, tat - tonumber(ARGV[1]) * window / budget)))
return 1
"""
)
