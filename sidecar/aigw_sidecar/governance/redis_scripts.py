"""The two Lua scripts that make Redis counting atomic: one round trip per reserve and one
per reconcile.

Both scripts take the reservation record key first and the counters' keys after it, all
sharing one ``{namespace:tenant}`` hash tag, so they run in one Redis Cluster slot. Time is
the caller's clock (``ARGV[1]``), which keeps the scripts deterministic and testable; a
negative elapsed time (clock skew between pods) counts as zero. Amounts added to budget
totals go through INCRBY as the caller's decimal strings, so money (nano-USD) stays exact.

RESERVE  KEYS: record, counter...   ARGV: now, request id, record ttl, then per counter
         kind, limit, amount, param, enforce(0/1).
         Returns {status, failed index, retry after, over (comma list), level...};
         status 0 refused (nothing written), 1 reserved, 2 already reserved (nothing written).
RECONCILE KEYS: record, counter...  ARGV: now, request id, then per counter kind, delta,
         param. Returns {0} when there is no record (already reconciled), else {1, level...}.
"""

from __future__ import annotations

__all__ = ["RECONCILE", "RESERVE"]

_LEVEL = """
local function bucket_level(key, now, rate)
  local v = redis.call('HMGET', key, 'l', 't')
  local level = tonumber(v[1]) or 0
  local dt = now - (tonumber(v[2]) or now)
  if dt > 0 then level = level - dt * rate end
  if level < 0 then level = 0 end
  return level
end
"""

RESERVE = (
    _LEVEL
    + """
local now = tonumber(ARGV[1])
local rid = ARGV[2]
local n = #KEYS - 1
local pre = {}
local failed = -1
local retry = 0
local over = {}
for i = 1, n do
  local key = KEYS[i + 1]
  local b = 3 + (i - 1) * 5
  local kind = ARGV[b + 1]
  local limit = tonumber(ARGV[b + 2])
  local amount = tonumber(ARGV[b + 3])
  local param = tonumber(ARGV[b + 4])
  local level
  if kind == 'b' then
    level = bucket_level(key, now, param)
  elseif kind == 'l' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    level = redis.call('ZCARD', key)
  else
    level = tonumber(redis.call('GET', key) or '0')
  end
  pre[i] = level
  if level + amount > limit then
    if ARGV[b + 5] == '1' then
      if failed < 0 then
        failed = i - 1
        if amount > limit then retry = -1
        elseif kind == 'b' then retry = (level + amount - limit) / param
        elseif kind == 'l' then retry = 1
        else retry = param - now end
      end
    else
      over[#over + 1] = tostring(i - 1)
    end
  end
end
local status = '1'
if redis.call('EXISTS', KEYS[1]) == 1 then
  status = '2'
  failed = -1
  over = {}
elseif failed >= 0 then
  status = '0'
end
if status == '1' then
  for i = 1, n do
    local key = KEYS[i + 1]
    local b = 3 + (i - 1) * 5
    local kind = ARGV[b + 1]
    local param = tonumber(ARGV[b + 4])
    if kind == 'b' then
      local level = pre[i] + tonumber(ARGV[b + 3])
      redis.call('HSET', key, 'l', level, 't', now)
      redis.call('EXPIRE', key, math.ceil(level / param) + 1)
      pre[i] = level
    elseif kind == 'l' then
      redis.call('ZADD', key, param, rid)
      local ttl = math.ceil(param - now) + 1
      if redis.call('TTL', key) < ttl then redis.call('EXPIRE', key, ttl) end
      pre[i] = redis.call('ZCARD', key)
    else
      pre[i] = redis.call('INCRBY', key, ARGV[b + 3])
      redis.call('EXPIREAT', key, math.ceil(param) + 3600)
    end
  end
  redis.call('SET', KEYS[1], '1', 'EX', tonumber(ARGV[3]))
end
local out = {status, tostring(failed), tostring(retry), table.concat(over, ',')}
for i = 1, n do out[#out + 1] = tostring(pre[i]) end
return out
"""
)

RECONCILE = (
    _LEVEL
    + """
if redis.call('DEL', KEYS[1]) == 0 then return {'0'} end
local now = tonumber(ARGV[1])
local rid = ARGV[2]
local out = {'1'}
for i = 1, #KEYS - 1 do
  local key = KEYS[i + 1]
  local b = 2 + (i - 1) * 3
  local kind = ARGV[b + 1]
  local delta = ARGV[b + 2]
  local param = tonumber(ARGV[b + 3])
  local level
  if kind == 'b' then
    level = bucket_level(key, now, param) + tonumber(delta)
    if level < 0 then level = 0 end
    redis.call('HSET', key, 'l', level, 't', now)
    redis.call('EXPIRE', key, math.ceil(level / param) + 1)
  elseif kind == 'l' then
    redis.call('ZREM', key, rid)
    level = redis.call('ZCARD', key)
  else
    level = tonumber(redis.call('GET', key) or '0')
    if delta ~= '0' and (level > 0 or tonumber(delta) > 0) then
      level = redis.call('INCRBY', key, delta)
      redis.call('EXPIREAT', key, math.ceil(param) + 3600)
    end
  end
  out[#out + 1] = tostring(level)
end
return out
"""
)
