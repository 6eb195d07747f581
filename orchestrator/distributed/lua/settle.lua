-- settle.lua: the coordinator decides the fate of an attempt it no longer trusts.
-- KEYS[1]  attempt hash   <p>:attempt:<attempt_id>
-- KEYS[2]  heartbeat key  <p>:attempt:<attempt_id>:hb
-- KEYS[3]  running attempts <p>:attempts:running (zset: the attempt leaves it here)
-- ARGV[1]  new state: "lost" (only if running with no live heartbeat) or "canceled"
--          (if queued, running, or not claimed yet: no record)
-- ARGV[2]  seconds the attempt record is kept
-- ARGV[3]  the attempt id (member of KEYS[3])
-- Returns 1 when the state changed, else 0. After this, claim and finish by any worker fail.
local state = redis.call('HGET', KEYS[1], 'state')
if ARGV[1] == 'lost' then
  if state == 'running' and redis.call('EXISTS', KEYS[2]) == 0 then
    redis.call('HSET', KEYS[1], 'state', 'lost')
    redis.call('ZREM', KEYS[3], ARGV[3])
    return 1
  end
  return 0
end
if not state or state == 'queued' or state == 'running' then
  redis.call('HSET', KEYS[1], 'state', ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[3])
  return 1
end
return 0
