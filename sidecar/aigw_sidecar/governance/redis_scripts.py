"""The Lua scripts that make Redis counting atomic: one round trip to reserve, one to
settle, one (only for calls that outlive a third of the lease) to renew.

Layout: two keys per request, both under the request's ``{namespace:tenant}`` hash tag, so
every script runs in one Redis Cluster slot:

* ``KEYS[1]`` = ``aigw:{tag}:c``: one hash of every bucket and budget of the tenant. A
  bucket ``f`` is the fields ``f.l`` (level) and ``f.t`` (stamp); a budget ``f`` is ``f.v``
  (value) and ``f.w`` (the end of the window the value belongs to: a request of a newer
  window starts the count again, a late settlement of an older one changes nothing);
  ``_x`` is the hash's own expiry and ``_z:<name>`` that of the request's zset, so the
  scripts send EXPIRE only when a key must live longer (about once a minute), not per call.
* ``KEYS[2]`` = ``aigw:{tag}:cc:<scope>`` (the concurrency leases) or ``aigw:{tag}:open``
  (requests without a concurrency limit): a zset of reservation id -> hold-until. The entry
  is the reservation record (settling removes it exactly once) and, in ``cc:``, the lease;
  a sentinel member ``~`` with score -inf keeps the zset (and the expiry noted for it)
  alive when its last entry is removed.

So the typical policy (requests/min, tokens/min, concurrency, a day and a month budget)
executes TIME, HMGET, ZCOUNT, ZADD, HSET to reserve (5 commands; +1 EXPIRE a minute) and
ZREM, ZREMRANGEBYSCORE, HMGET, ZCOUNT, HSET to settle.

Time is the caller's clock (``now``), which keeps the scripts deterministic and testable; a
negative elapsed time (clock skew between pods) counts as zero. The one exception is the
**give-up deadline** of a reservation: milliseconds on the *server's* clock (the store
measures the offset) after which the sidecar has stopped waiting for the reply. A RESERVE
that runs later (Redis was frozen, the command sat in a socket buffer) writes nothing and
answers status 3, so a reservation the sidecar gave up on never outlives the give-up.

Every argument is checked before anything is written (a bad one is the error reply
``AIGWARG ...`` and changes nothing): integers in ``[0, 2^53)``, finite positive rates,
window ends and hold times within bounds. Numbers are written with 17 significant digits.

RESERVE   KEYS: hash, zset. ARGV: now, deadline ms (0: none), reservation id, hold until,
          zset name, then per counter kind (b/l/t), field, limit, amount, param, enforce.
          Returns {status, failed index, retry after, over (comma list), level...};
          status 0 refused, 1 reserved, 2 already reserved, 3 past its deadline (0, 2, 3
          write nothing).
RECONCILE KEYS: hash, zset. ARGV: now, reservation id, then per counter kind, field,
          delta, param. Returns {0} when there is no record (settled, or expired), else
          {1, level...}.
RENEW     KEYS: zset. ARGV: now, reservation id, hold until. Returns 1, or 0 if the record
          is gone.
"""

from __future__ import annotations

__all__ = ["RECONCILE", "RENEW", "RESERVE"]

_COMMON = """
local MAX = 9007199254740991
local function fmt(x)
  if x == math.floor(x) and x > -MAX and x < MAX then return string.format('%d', x) end
  return string.format('%.17g', x)
end
local function int(s)
  local v = tonumber(s)
  if v == nil or v ~= v or v < 0 or v > MAX or v ~= math.floor(v) then return nil end
  return v
end
local function real(s, lo, hi)
  local v = tonumber(s)
  if v == nil or v ~= v or v < lo or v > hi then return nil end
  return v
end
local now = real(ARGV[1], 0, 1e11)
if now == nil then return redis.error_reply('AIGWARG now') end
"""

RESERVE = (
    _COMMON
    + """
local deadline = real(ARGV[2], 0, 1e14)
local rid = ARGV[3]
local hold = real(ARGV[4], now, now + 86400)
local zname = ARGV[5]
local n = (#ARGV - 5) / 6
if deadline == nil or hold == nil or hold == now or #rid < 1 or #rid > 200 or rid == '~'
   or #zname < 1 or n < 1 or n > 64 or n ~= math.floor(n) then
  return redis.error_reply('AIGWARG reserve arguments')
end
local kind, field, limit, amount, param = {}, {}, {}, {}, {}
local names = {'_x', '_z:' .. zname}
for i = 1, n do
  local b = 5 + (i - 1) * 6
  local k = ARGV[b + 1]
  kind[i], field[i] = k, ARGV[b + 2]
  limit[i], amount[i] = int(ARGV[b + 3]), int(ARGV[b + 4])
  if k == 'b' then param[i] = real(ARGV[b + 5], 1e-9, 1e15)
  elseif k == 't' then param[i] = real(ARGV[b + 5], 1, now + 34560000)
  elseif k == 'l' then param[i] = 0
  end
  if limit[i] == nil or amount[i] == nil or param[i] == nil
     or (k ~= 'l' and (#field[i] < 1 or #field[i] > 300)) then
    return redis.error_reply('AIGWARG counter ' .. i)
  end
  if k == 'b' then
    names[#names + 1] = field[i] .. '.l'
    names[#names + 1] = field[i] .. '.t'
  elseif k == 't' then
    names[#names + 1] = field[i] .. '.v'
    names[#names + 1] = field[i] .. '.w'
  end
end
if deadline > 0 then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > deadline then
    return {'3', '-1', '0', ''}
  end
end
local vals = redis.call('HMGET', KEYS[1], unpack(names))
local pre = {}
local j = 3
for i = 1, n do
  local k = kind[i]
  if k == 'b' then
    local level = tonumber(vals[j]) or 0
    local dt = now - (tonumber(vals[j + 1]) or now)
    if dt > 0 then level = level - dt * param[i] end
    if level < 0 then level = 0 end
    pre[i] = level
    j = j + 2
  elseif k == 't' then
    if tonumber(vals[j + 1]) == param[i] then pre[i] = tonumber(vals[j]) or 0 else pre[i] = 0 end
    j = j + 2
  else
    pre[i] = redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[1], '+inf')
  end
end
local failed, retry, over = -1, 0, {}
for i = 1, n do
  if pre[i] + amount[i] > limit[i] then
    if ARGV[5 + (i - 1) * 6 + 6] == '1' then
      if failed < 0 then
        failed = i - 1
        if amount[i] > limit[i] then retry = -1
        elseif kind[i] == 'b' then retry = (pre[i] + amount[i] - limit[i]) / param[i]
        elseif kind[i] == 'l' then retry = 1
        else retry = param[i] - now end
      end
    else
      over[#over + 1] = tostring(i - 1)
    end
  end
end
local function answer(status)
  local out = {status, tostring(failed), fmt(retry), table.concat(over, ',')}
  for i = 1, n do out[#out + 1] = fmt(pre[i]) end
  return out
end
if failed >= 0 then return answer('0') end
if redis.call('ZADD', KEYS[2], 'NX', ARGV[4], rid) == 0 then
  failed, over = -1, {}
  return answer('2')
end
local hset = {}
local need = 0
for i = 1, n do
  local k = kind[i]
  pre[i] = pre[i] + amount[i]
  if k == 'b' then
    hset[#hset + 1] = field[i] .. '.l'
    hset[#hset + 1] = fmt(pre[i])
    hset[#hset + 1] = field[i] .. '.t'
    hset[#hset + 1] = ARGV[1]
    need = math.max(need, now + pre[i] / param[i] + 1)
  elseif k == 't' then
    hset[#hset + 1] = field[i] .. '.v'
    hset[#hset + 1] = fmt(pre[i])
    hset[#hset + 1] = field[i] .. '.w'
    hset[#hset + 1] = ARGV[5 + (i - 1) * 6 + 5]
    need = math.max(need, param[i] + 3600)
  end
end
local zx = tonumber(vals[2]) or 0
local zexpire = nil
if hold > zx then
  -- A new zset, or one that must live longer. The sentinel (score -inf, never counted,
  -- never swept) keeps it from vanishing when its last entry goes, so the expiry noted
  -- in the hash stays true for as long as the zset exists.
  zx = hold + 60
  zexpire = math.ceil(zx - now)
  hset[#hset + 1] = '_z:' .. zname
  hset[#hset + 1] = fmt(zx)
  redis.call('ZADD', KEYS[2], '-inf', '~')
end
need = math.max(need, zx)
local hexpire = nil
if need > (tonumber(vals[1]) or 0) then
  hexpire = math.ceil(need + 60 - now)
  hset[#hset + 1] = '_x'
  hset[#hset + 1] = fmt(need + 60)
end
if #hset > 0 then redis.call('HSET', KEYS[1], unpack(hset)) end
if hexpire then redis.call('EXPIRE', KEYS[1], hexpire) end
if zexpire then redis.call('EXPIRE', KEYS[2], zexpire) end
return answer('1')
"""
)

RECONCILE = (
    _COMMON
    + """
local rid = ARGV[2]
local n = (#ARGV - 2) / 4
if #rid < 1 or #rid > 200 or n < 1 or n > 64 or n ~= math.floor(n) then
  return redis.error_reply('AIGWARG reconcile arguments')
end
local kind, field, delta, param = {}, {}, {}, {}
local names = {'_x'}
for i = 1, n do
  local b = 2 + (i - 1) * 4
  local k = ARGV[b + 1]
  kind[i], field[i] = k, ARGV[b + 2]
  delta[i] = real(ARGV[b + 3], -MAX, MAX)
  if k == 'b' then param[i] = real(ARGV[b + 4], 1e-9, 1e15)
  elseif k == 't' then param[i] = real(ARGV[b + 4], 1, now + 34560000)
  elseif k == 'l' then param[i] = 0
  end
  if delta[i] == nil or delta[i] ~= math.floor(delta[i]) or param[i] == nil then
    return redis.error_reply('AIGWARG counter ' .. i)
  end
  if k == 'b' then
    names[#names + 1] = field[i] .. '.l'
    names[#names + 1] = field[i] .. '.t'
  elseif k == 't' then
    names[#names + 1] = field[i] .. '.v'
    names[#names + 1] = field[i] .. '.w'
  end
end
if redis.call('ZREM', KEYS[2], rid) == 0 then return {'0'} end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '(-inf', ARGV[1])
local vals = redis.call('HMGET', KEYS[1], unpack(names))
local out = {'1'}
local hset = {}
local need = 0
local j = 2
for i = 1, n do
  local k = kind[i]
  local level
  if k == 'b' then
    level = tonumber(vals[j]) or 0
    local dt = now - (tonumber(vals[j + 1]) or now)
    if dt > 0 then level = level - dt * param[i] end
    level = level + delta[i]
    if level < 0 then level = 0 end
    hset[#hset + 1] = field[i] .. '.l'
    hset[#hset + 1] = fmt(level)
    hset[#hset + 1] = field[i] .. '.t'
    hset[#hset + 1] = ARGV[1]
    need = math.max(need, now + level / param[i] + 1)
    j = j + 2
  elseif k == 't' then
    level = 0
    if tonumber(vals[j + 1]) == param[i] then
      level = (tonumber(vals[j]) or 0) + delta[i]
      if level < 0 then level = 0 end
      hset[#hset + 1] = field[i] .. '.v'
      hset[#hset + 1] = fmt(level)
    end
    j = j + 2
  else
    level = redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[1], '+inf')
  end
  out[#out + 1] = fmt(level)
end
if #hset > 0 then
  if need > (tonumber(vals[1]) or 0) then
    hset[#hset + 1] = '_x'
    hset[#hset + 1] = fmt(need + 60)
    redis.call('HSET', KEYS[1], unpack(hset))
    redis.call('EXPIRE', KEYS[1], math.ceil(need + 60 - now))
  else
    redis.call('HSET', KEYS[1], unpack(hset))
  end
end
return out
"""
)

RENEW = (
    _COMMON
    + """
local hold = real(ARGV[3], now, now + 86400)
if hold == nil or #ARGV[2] < 1 or #ARGV[2] > 200 then
  return redis.error_reply('AIGWARG renew arguments')
end
if redis.call('ZSCORE', KEYS[1], ARGV[2]) == false then return 0 end
redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[2])
redis.call('EXPIRE', KEYS[1], math.ceil(hold + 60 - now), 'GT')
return 1
"""
)
