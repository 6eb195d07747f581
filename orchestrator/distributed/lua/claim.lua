-- claim.lua: a worker takes a queued step attempt before running it.
-- KEYS[1]  attempt hash   <p>:attempt:<attempt_id>   fields: state, worker, token, started_at
-- KEYS[2]  heartbeat key  <p>:attempt:<attempt_id>:hb (string, expires unless renewed)
-- ARGV[1]  worker id
-- ARGV[2]  claim token (random, per delivery)
-- ARGV[3]  heartbeat ttl in milliseconds
-- Returns "claimed", or the attempt's current state ("running", "done", "lost", "canceled")
-- when it is not queued (a redelivered or duplicate message), or "unknown".
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return 'unknown'
end
if state ~= 'queued' then
  return state
end
local now = redis.call('TIME')
redis.call('HSET', KEYS[1], 'state', 'running', 'worker', ARGV[1], 'token', ARGV[2],
  'started_at', now[1] .. '.' .. string.format('%06d', now[2]))
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 'claimed'
