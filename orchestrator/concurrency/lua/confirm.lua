-- confirm.lua: a worker, right before it runs a step, checks that the attempt's lease is
-- still held (not expired, token matches) and takes over its renewal: sets the worker and
-- extends the expiry to now + lease time, in one step.
-- Runs after _lib.lua (prepended at load time), which states KEYS[1..5], ARGV[1..4] and the
-- key schema.
-- ARGV[5]  lease id
-- ARGV[6]  fencing token of the grant
-- ARGV[7]  lease time in milliseconds
-- ARGV[8]  worker ("worker:<hostname>/<pid>")
-- Returns 1 when confirmed, 0 when the lease is gone, waiting, or the token differs: the
-- worker must not run the step. Expired leases are purged first (waiters granted).
local id, token, ttl, worker = ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8]

local affected = purge()
local lk = lease_key(id)
local fields = redis.call('HMGET', lk, 'token', 'state', 'buckets')
local result = 0
if fields[1] and fields[1] == token and fields[2] == 'held' then
  local expiry = NOW_MS + ttl
  for _, b in ipairs(decode_buckets(fields[3])) do
    redis.call('ZADD', holders_key(b), int(expiry), id)
  end
  redis.call('HSET', lk, 'worker', worker, 'expiry', int(expiry), 'ttl', int(ttl))
  redis.call('ZADD', K_EXPIRY, int(expiry), id)
  result = 1
end
admit(affected, nil)
return result
