-- finish.lua: a worker reports the events that end its attempt, exactly once.
-- KEYS[1]  attempt hash     <p>:attempt:<attempt_id>
-- KEYS[2]  heartbeat key    <p>:attempt:<attempt_id>:hb
-- KEYS[3]  run event stream <p>:run:<run_id>:events   (entries: field "e" = event JSON)
-- KEYS[4]  run bell pointer <p>:run:<run_id>:bell     (string: the bell stream of the process
--                           driving the run, rung after the events are appended; the bell
--                           stream's key is read here, so it must live on the same shard)
-- KEYS[5]  running attempts <p>:attempts:running      (zset: the attempt leaves it here)
-- ARGV[1]  claim token
-- ARGV[2]  run id
-- ARGV[3]  the attempt id (member of KEYS[5])
-- ARGV[4..n] event JSONs in order: held-back events (outputs), then the final one
--          (STEP_SUCCESS, STEP_FAILURE or STEP_UP_FOR_RETRY)
-- Returns the final event's stream id, or false when the attempt is not this worker's running
-- attempt any more (declared lost, canceled, or finished by someone else): nothing is
-- appended, so a step never completes twice. A call repeated by the same worker after a lost
-- reply (same token, already done) appends nothing and returns the id stored the first time.
local fields = redis.call('HMGET', KEYS[1], 'token', 'state', 'final')
if fields[1] ~= ARGV[1] then
  return false
end
if fields[2] == 'done' and fields[3] then
  return fields[3]
end
if fields[2] ~= 'running' then
  return false
end
local id = false
for i = 4, #ARGV do
  id = redis.call('XADD', KEYS[3], '*', 'e', ARGV[i])
end
redis.call('HSET', KEYS[1], 'state', 'done', 'final', id)
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[5], ARGV[3])
local bell = redis.call('GET', KEYS[4])
if bell then
  redis.call('XADD', bell, 'MAXLEN', '~', '10000', '*', 'r', ARGV[2])
end
return id
