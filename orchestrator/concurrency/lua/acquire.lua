-- acquire.lua: ask for all the slots of one step attempt at once, all or nothing.
-- Runs after _lib.lua (prepended at load time), which states KEYS[1..5], ARGV[1..4] and the
-- key schema.
-- ARGV[5]   lease id (the step attempt id, e.g. run:step:attempt)
-- ARGV[6]   run id
-- ARGV[7]   step key
-- ARGV[8]   attempt number
-- ARGV[9]   priority (integer, higher first; clamped to +-4095 by the caller)
-- ARGV[10]   worker: who renews the lease ("coordinator:<id>")
-- ARGV[11]  lease time in milliseconds
-- ARGV[12]  the step's buckets, a JSON list (e.g. ["database", "database=redshift"])
-- Returns {1, token} when the lease holds its slots (now, or already: idempotent, same
-- token; a coordinator asking again takes over renewal from another coordinator), else {0}: the lease waits in every bucket's queue (a repeated call keeps its
-- original rank and refreshes its expiry and worker). Expired leases are purged first and
-- the waiters they let in are granted (with slot_granted events).
local id, run_id, step_key, attempt = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local priority, worker, ttl, buckets_json = tonumber(ARGV[9]), ARGV[10], tonumber(ARGV[11]), ARGV[12]

local affected = purge()
local lk = lease_key(id)
local state = redis.call('HGET', lk, 'state')

if state == 'held' then
  -- A resumed run asks again for a lease its dead coordinator held: the asker takes over its
  -- renewal (a lease a worker renews stays the worker's).
  local renewer = redis.call('HGET', lk, 'worker') or ''
  if string.sub(renewer, 1, 12) == 'coordinator:' then
    redis.call('HSET', lk, 'worker', worker)
  end
  admit(affected, id)
  return {1, tonumber(redis.call('HGET', lk, 'token'))}
end

local expiry = NOW_MS + ttl
if state == 'waiting' then
  redis.call('HSET', lk, 'worker', worker, 'ttl', int(ttl), 'expiry', int(expiry))
else
  local rank = -priority * 1099511627776 + redis.call('INCR', K_ARRIVAL)
  redis.call('HSET', lk, 'run_id', run_id, 'step_key', step_key, 'attempt', attempt,
    'worker', worker, 'state', 'waiting', 'buckets', buckets_json, 'priority', int(priority),
    'rank', int(rank), 'token', '0', 'ttl', int(ttl), 'queued', int(NOW_MS),
    'since', int(NOW_MS), 'expiry', int(expiry))
  for _, b in ipairs(decode_buckets(buckets_json)) do
    redis.call('ZADD', waiters_key(b), int(rank), id)
    redis.call('SADD', K_BUCKETS, b)
  end
  redis.call('SADD', run_key(run_id), id)
end
redis.call('ZADD', K_EXPIRY, int(expiry), id)

local buckets = decode_buckets(redis.call('HGET', lk, 'buckets'))
if #buckets == 0 then
  -- nothing limits this step: grant at once (admit only walks bucket queues)
  return {1, grant(id, buckets, false)}
end
mark(affected, buckets)
admit(affected, id)
if redis.call('HGET', lk, 'state') == 'held' then
  return {1, tonumber(redis.call('HGET', lk, 'token'))}
end
return {0}
