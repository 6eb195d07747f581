-- _lib.lua: helpers shared by the cross-run limiter scripts. It is not run on its own: the
-- Python loader (orchestrator/concurrency/redis.py) prepends it to every other script here, so
-- each script starts with these locals defined.
--
-- Every script gets the same KEYS and the same first four ARGV:
--   KEYS[1]  <p>:{limits}:defs      hash    limit spec (key | key=value | key=*) -> JSON
--                                           {key, value, limit}
--   KEYS[2]  <p>:{limits}:buckets   set     buckets that have holders or waiters
--   KEYS[3]  <p>:{limits}:expiry    zset    lease_id -> expiry (ms) of every lease
--   KEYS[4]  <p>:{limits}:arrival   string  INCR counter behind waiter ranks
--   KEYS[5]  <p>:{limits}:fence     string  INCR counter of fencing tokens
--   ARGV[1]  B, the base '<p>:{limits}:' of the keys built at run time (below)
--   ARGV[2]  head and ARGV[3] tail of a run's event stream key: head .. run_id .. tail
--            (RedisKeys.run_events; the stream the run storage uses, field "e")
--   ARGV[4]  tail of a run's bell pointer: head .. run_id .. ARGV[4] (RedisKeys.run_bell):
--            a string naming the bell stream of the process driving the run, rung (XADD
--            field "r" = run id) after an event it must see is appended to the run's stream
--
-- Keys built at run time (same formats as RedisKeys.limit_*; all share the {limits} hash tag,
-- so one script's keys stay in one Redis Cluster slot; the run event streams do not):
--   B..'holders:'..bucket   zset  lease_id -> expiry (ms since epoch, from Redis TIME)
--   B..'waiters:'..bucket   zset  lease_id -> rank = -priority * 2^40 + arrival (low first)
--   B..'lease:'..lease_id   hash  run_id, step_key, attempt, worker (who renews it), state
--                                 ('held' | 'waiting'), buckets (JSON list), priority, rank,
--                                 token (fencing token; 0 while waiting), ttl (ms), queued,
--                                 since (ms: granted, or queued while waiting), expiry (ms)
--   B..'run:'..run_id       set   lease ids of the run
--
-- Buckets are 'key', 'key=value' or 'key=*value' (per unique value). A bucket's limit is the
-- definition under its own name, else (per unique value) under 'key=*'; a bucket with no
-- definition (deleted) has no limit.
--
-- Grant rule (the same as LocalArbiter): a waiting lease is granted iff, for every one of its
-- buckets, the live holders are fewer than the limit and it is first among the bucket's
-- waiters. Only a bucket's first waiter can be granted, so admit() looks at the heads of the
-- buckets that changed; a grant removes the lease from other queues, whose heads it looks at
-- next. Time is Redis TIME, read once per script.

local K_DEFS, K_BUCKETS, K_EXPIRY, K_ARRIVAL, K_FENCE = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local BASE, STREAM_HEAD, STREAM_TAIL, BELL_TAIL = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local TIME = redis.call('TIME')
local NOW_MS = tonumber(TIME[1]) * 1000 + math.floor(tonumber(TIME[2]) / 1000)
local NOW_S = tonumber(TIME[1]) + tonumber(TIME[2]) / 1000000

local function int(n)
  return string.format('%.0f', n)
end

local function holders_key(bucket) return BASE .. 'holders:' .. bucket end
local function waiters_key(bucket) return BASE .. 'waiters:' .. bucket end
local function lease_key(id) return BASE .. 'lease:' .. id end
local function run_key(run_id) return BASE .. 'run:' .. run_id end

-- The bucket's limit, or nil when no definition covers it.
local function limit_of(bucket)
  local def = redis.call('HGET', K_DEFS, bucket)
  if not def then
    local at = string.find(bucket, '=*', 1, true)
    if at then
      def = redis.call('HGET', K_DEFS, string.sub(bucket, 1, at + 1))
    end
  end
  if not def then
    return nil
  end
  return tonumber(cjson.decode(def).limit)
end

local function has_room(bucket)
  local limit = limit_of(bucket)
  return limit == nil or redis.call('ZCARD', holders_key(bucket)) < limit
end

local function first_waiter(bucket)
  return redis.call('ZRANGE', waiters_key(bucket), 0, 0)[1]
end

local function decode_buckets(raw)
  if not raw then
    return {}
  end
  local list = cjson.decode(raw)
  if type(list) ~= 'table' then
    return {}
  end
  return list
end

-- Remove a lease everywhere (holder or waiter). Returns the buckets it was in.
local function drop(id)
  local lk = lease_key(id)
  local fields = redis.call('HMGET', lk, 'buckets', 'run_id')
  local buckets = decode_buckets(fields[1])
  for _, b in ipairs(buckets) do
    redis.call('ZREM', holders_key(b), id)
    redis.call('ZREM', waiters_key(b), id)
    if redis.call('EXISTS', holders_key(b), waiters_key(b)) == 0 then
      redis.call('SREM', K_BUCKETS, b)
    end
  end
  if fields[2] then
    redis.call('SREM', run_key(fields[2]), id)
  end
  redis.call('ZREM', K_EXPIRY, id)
  redis.call('DEL', lk)
  return buckets
end

local function mark(affected, buckets)
  for _, b in ipairs(buckets) do
    affected[b] = true
  end
end

-- Drop every lease (held or waiting) whose expiry has passed. Returns the set of buckets
-- they were in (their capacity or queue changed).
local function purge()
  local affected = {}
  local expired = redis.call('ZRANGEBYSCORE', K_EXPIRY, '-inf', int(NOW_MS))
  for _, id in ipairs(expired) do
    mark(affected, drop(id))
  end
  return affected
end

-- Append the slot_granted engine event to the lease's run event stream, and ring the bell of
-- the process driving the run, so it reads the grant at once.
local function notify(id, token, buckets)
  local f = redis.call('HMGET', lease_key(id), 'run_id', 'step_key', 'attempt')
  local run_id, step_key, attempt = f[1], f[2], tonumber(f[3]) or 0
  local event = {
    event_type_value = 'ENGINE_EVENT',
    run_id = run_id,
    timestamp = NOW_S,
    step_key = step_key,
    message = 'Concurrency slot granted to step \'' .. tostring(step_key) .. '\' (attempt '
      .. int(attempt) .. ') for ' .. table.concat(buckets, ', ') .. ' (fencing token '
      .. int(token) .. ')',
    data = {kind = 'slot_granted', attempt = attempt, attempt_id = id, token = token},
  }
  redis.call('XADD', STREAM_HEAD .. run_id .. STREAM_TAIL, '*', 'e', cjson.encode(event))
  local bell = redis.call('GET', STREAM_HEAD .. run_id .. BELL_TAIL)
  if bell then
    redis.call('XADD', bell, 'MAXLEN', '~', '10000', '*', 'r', run_id)
  end
end

-- Turn a waiting lease into a holder with a new fencing token.
local function grant(id, buckets, announce)
  local lk = lease_key(id)
  local token = redis.call('INCR', K_FENCE)
  local ttl = tonumber(redis.call('HGET', lk, 'ttl')) or 0
  local expiry = NOW_MS + ttl
  for _, b in ipairs(buckets) do
    redis.call('ZREM', waiters_key(b), id)
    redis.call('ZADD', holders_key(b), int(expiry), id)
  end
  redis.call('HSET', lk, 'state', 'held', 'token', int(token), 'since', int(NOW_MS),
    'expiry', int(expiry))
  redis.call('ZADD', K_EXPIRY, int(expiry), id)
  if announce then
    notify(id, token, buckets)
  end
  return token
end

-- Grant every waiter that can be granted, starting from the heads of the `affected` buckets.
-- `quiet_id` (the caller's own lease) is granted without an event. Returns the grant count.
local function admit(affected, quiet_id)
  local queue = {}
  for b in pairs(affected) do
    queue[#queue + 1] = b
  end
  table.sort(queue)
  local grants = 0
  local i = 1
  while i <= #queue do
    local b = queue[i]
    i = i + 1
    local head = first_waiter(b)
    if head then
      local fields = redis.call('HMGET', lease_key(head), 'state', 'buckets')
      if fields[1] ~= 'waiting' then
        -- a dangling queue entry (should not happen): drop it and look at the bucket again
        redis.call('ZREM', waiters_key(b), head)
        queue[#queue + 1] = b
      else
        local buckets = decode_buckets(fields[2])
        local ok = true
        for _, hb in ipairs(buckets) do
          if first_waiter(hb) ~= head or not has_room(hb) then
            ok = false
            break
          end
        end
        if ok then
          grant(head, buckets, head ~= quiet_id)
          grants = grants + 1
          for _, hb in ipairs(buckets) do
            queue[#queue + 1] = hb
          end
        end
      end
    end
  end
  return grants
end
