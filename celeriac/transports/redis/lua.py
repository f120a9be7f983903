"""Server-side scripts of the Redis transport.

``POP_AND_RECORD`` closes kombu's window between ``BRPOP`` and the ``unacked`` write: it moves
due parked (ETA) messages back to their lists, then pops up to N messages in BRPOP's key
order and records each one in ``unacked`` / ``unacked_index`` exactly as kombu does
(``HSET unacked <tag> [<envelope>, <exchange>, <routing_key>]``, ``ZADD unacked_index <now>
<tag>``), all in one atomic step. The keys and values other clients see are unchanged.

The hash value is built by concatenation, not by re-encoding, so the envelope keeps its
exact bytes; strings that need JSON escapes fall back to ``cjson.encode`` (still valid JSON).
"""

from __future__ import annotations

_COMMON = r"""
local function jstr(s)
  if type(s) ~= 'string' then s = '' end
  if not string.find(s, '[^ -~]') and not string.find(s, '["\\]') then
    return '"' .. s .. '"'
  end
  return cjson.encode(s)
end

local function decode(raw)
  local ok, env = pcall(cjson.decode, raw)
  if ok and type(env) == 'table' and type(env['properties']) == 'table' then
    return env['properties']
  end
  return nil
end

local function step_of(props, steps)
  local p = 0
  if props ~= nil then p = tonumber(props['priority']) or 0 end
  p = math.max(math.min(math.floor(p), 9), 0)
  local chosen = 0
  for _, s in ipairs(steps) do
    if s <= p then chosen = s end
  end
  return chosen
end
"""

#: KEYS: unacked, unacked_index, <n list keys in pop order>, <m delayed zsets>
#: ARGV: now, limit, n, m, sep, steps (comma separated), <m list base keys>, carried raw,
#:       carried list key, record (1 = write unacked), <delivery tags to ack first>
POP_AND_RECORD = (
    _COMMON
    + r"""
local now, limit = ARGV[1], tonumber(ARGV[2])
local n, m = tonumber(ARGV[3]), tonumber(ARGV[4])
local sep = ARGV[5]
local steps = {}
for s in string.gmatch(ARGV[6], '[^,]+') do table.insert(steps, tonumber(s)) end
local carried, carried_key, record = ARGV[7 + m], ARGV[8 + m], ARGV[9 + m] == '1'

-- Acks of earlier deliveries ride along (the worker's ack and its next fetch: one trip).
for i = 10 + m, #ARGV do
  redis.call('ZREM', KEYS[2], ARGV[i])
  redis.call('HDEL', KEYS[1], ARGV[i])
end

local function remember(raw)
  if not record then return end
  local props = decode(raw)
  if props == nil or type(props['delivery_tag']) ~= 'string' then return end
  local info = props['delivery_info']
  local ex, rk = '', ''
  if type(info) == 'table' then ex, rk = info['exchange'], info['routing_key'] end
  redis.call('ZADD', KEYS[2], now, props['delivery_tag'])
  redis.call('HSET', KEYS[1], props['delivery_tag'],
             '[' .. raw .. ', ' .. jstr(ex) .. ', ' .. jstr(rk) .. ']')
end

for i = 1, m do
  local zkey, base = KEYS[2 + n + i], ARGV[6 + i]
  local due = redis.call('ZRANGEBYSCORE', zkey, '-inf', now, 'LIMIT', 0, 1000)
  for _, raw in ipairs(due) do
    local step = step_of(decode(raw), steps)
    local target = base
    if step > 0 then target = base .. sep .. step end
    redis.call('RPUSH', target, raw)
    redis.call('ZREM', zkey, raw)
  end
end

local next_due = false
for i = 1, m do
  local first = redis.call('ZRANGE', KEYS[2 + n + i], 0, 0, 'WITHSCORES')
  if first[2] and (not next_due or tonumber(first[2]) < tonumber(next_due)) then
    next_due = first[2]
  end
end

local out = {}
if carried ~= '' then
  remember(carried)
  table.insert(out, carried_key)
  table.insert(out, carried)
end
for i = 1, n do
  local key = KEYS[2 + i]
  while #out < 2 * limit do
    local raw = redis.call('RPOP', key)
    if not raw then break end
    remember(raw)
    table.insert(out, key)
    table.insert(out, raw)
  end
  if #out >= 2 * limit then break end
end
return {out, next_due}
"""
)

#: KEYS: unacked_index. ARGV: now, then (delivery tag, the score its holder last wrote) pairs.
#: Renews and returns the tags whose score is still the holder's: another score means the
#: lease ran out, was restored and another consumer took the message (it keeps its tag).
CONFIRM_LEASES = r"""
local kept = {}
for i = 2, #ARGV, 2 do
  local held = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if held and tonumber(held) == tonumber(ARGV[i + 1]) then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[1], ARGV[i])
    table.insert(kept, ARGV[i])
  end
end
return kept
"""

#: kombu's mutex release: delete the lock only if we still own it.
RELEASE_MUTEX = r"""
if redis.call("get", KEYS[1]) == ARGV[1] then
  return redis.call("del", KEYS[1])
end
return 0
"""

__all__ = ["CONFIRM_LEASES", "POP_AND_RECORD", "RELEASE_MUTEX"]
