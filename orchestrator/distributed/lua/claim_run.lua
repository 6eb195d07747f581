-- claim_run.lua: take the next launched runs off the run queue and own them, in one step, so
-- a coordinator dying in between cannot lose a run.
-- KEYS[1]  run queue     <p>:runqueue      (zset: run id -> rank, lowest first)
-- KEYS[2]  active runs   <p>:runs:active   (set)
-- ARGV[1]  owner id
-- ARGV[2]  lease in milliseconds
-- ARGV[3]  owner record prefix, ARGV[4] its suffix: the record is prefix..run_id..suffix
--          (<p>:run:<run_id>:owner, a hash as own.lua describes; built here, so it must live
--          on the same shard)
-- ARGV[5]  how many runs to take at most
-- Returns the run ids taken, best-ranked first (empty when the queue is empty).
local popped = redis.call('ZPOPMIN', KEYS[1], tonumber(ARGV[5]))
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expires = string.format('%.0f', now + tonumber(ARGV[2]))
local taken = {}
for i = 1, #popped, 2 do
  local run_id = popped[i]
  redis.call('HSET', ARGV[3] .. run_id .. ARGV[4], 'owner', ARGV[1],
    'since', string.format('%.0f', now), 'expires', expires)
  redis.call('SADD', KEYS[2], run_id)
  taken[#taken + 1] = run_id
end
return taken
