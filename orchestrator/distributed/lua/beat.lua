-- beat.lua: a worker renews the heartbeat of the attempt it is running.
-- KEYS[1]  attempt hash   <p>:attempt:<attempt_id>
-- KEYS[2]  heartbeat key  <p>:attempt:<attempt_id>:hb
-- ARGV[1]  claim token
-- ARGV[2]  heartbeat ttl in milliseconds
-- Returns 1, or 0 when the attempt is no longer this worker's (lapsed, lost or canceled): an
-- expired heartbeat is never brought back, since the coordinator may have moved on.
if redis.call('HGET', KEYS[1], 'token') == ARGV[1]
    and redis.call('HGET', KEYS[1], 'state') == 'running'
    and redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  return 1
end
return 0
