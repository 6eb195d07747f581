-- finish.lua: a worker reports the events that end its attempt, exactly once.
-- KEYS[1]  attempt hash     <p>:attempt:<attempt_id>
-- KEYS[2]  heartbeat key    <p>:attempt:<attempt_id>:hb
-- KEYS[3]  run event stream <p>:run:<run_id>:events   (entries: field "e" = event JSON)
-- ARGV[1]  claim token
-- ARGV[2..n] event JSONs in order: held-back events (outputs), then the final one
--          (STEP_SUCCESS, STEP_FAILURE or STEP_UP_FOR_RETRY)
-- Returns the final event's stream id, or false when the attempt is not this worker's running
-- attempt any more (declared lost, canceled, or finished by someone else): nothing is
-- appended, so a step never completes twice.
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1]
    or redis.call('HGET', KEYS[1], 'state') ~= 'running' then
  return false
end
local id = false
for i = 2, #ARGV do
  id = redis.call('XADD', KEYS[3], '*', 'e', ARGV[i])
end
redis.call('HSET', KEYS[1], 'state', 'done')
redis.call('DEL', KEYS[2])
return id
