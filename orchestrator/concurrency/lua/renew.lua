-- renew.lua: keep a lease (held or waiting) alive: extend its expiry to now + lease time,
-- if the fencing token matches and it has not expired.
-- Runs after _lib.lua (prepended at load time), which states KEYS[1..5], ARGV[1..4] and the
-- key schema.
-- ARGV[5]  lease id
-- ARGV[6]  fencing token ("0" for a waiting lease)
-- ARGV[7]  lease time in milliseconds
-- ARGV[8]  worker to record as the renewer ("" keeps the current one)
-- ARGV[9]  expected current renewer ("" renews whoever renews it now)
-- Returns 1 when renewed; 0 when the lease is gone or the token differs (a stale holder);
-- 2 when the token matches but another renewer has taken it over (ARGV[9] differs): not
-- renewed. Expired leases are purged first and the waiters they let in are granted.
local id, token, ttl, worker, owner = ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8], ARGV[9]

local affected = purge()
local lk = lease_key(id)
local fields = redis.call('HMGET', lk, 'token', 'state', 'worker', 'buckets')
local result = 0
if fields[1] and fields[1] == token then
  if owner ~= '' and fields[3] ~= owner then
    result = 2
  else
    local expiry = NOW_MS + ttl
    if fields[2] == 'held' then
      for _, b in ipairs(decode_buckets(fields[4])) do
        redis.call('ZADD', holders_key(b), int(expiry), id)
      end
    end
    redis.call('HSET', lk, 'expiry', int(expiry), 'ttl', int(ttl))
    if worker ~= '' then
      redis.call('HSET', lk, 'worker', worker)
    end
    redis.call('ZADD', K_EXPIRY, int(expiry), id)
    result = 1
  end
end
admit(affected, nil)
return result
