-- claim_run.lua: take the next launched run off the run queue and own it, in one step, so a
-- coordinator dying in between cannot lose the run.
-- KEYS[1]  run queue     <p>:runqueue      (zset: run id -> rank, lowest first)
-- KEYS[2]  active runs   <p>:runs:active   (set)
-- ARGV[1]  owner id
-- ARGV[2]  lease in milliseconds
-- ARGV[3]  owner key prefix, ARGV[4] owner key suffix: the owner key is prefix..run_id..suffix
--          (<p>:run:<run_id>:owner; built here, so it must live on the same shard)
-- Returns the run id, or false when the queue is empty.
local popped = redis.call('ZPOPMIN', KEYS[1])
if #popped == 0 then
  return false
end
local run_id = popped[1]
redis.call('SET', ARGV[3] .. run_id .. ARGV[4], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], run_id)
return run_id
