-- ring.lua: tell the process driving a run that the run's stream holds an event it must see
-- (a cancel request, an event its own executor stored for the loop).
-- KEYS[1]  run bell pointer <p>:run:<run_id>:bell (string: the driving process's bell stream
--          key; read here, so the bell stream must live on the same shard)
-- ARGV[1]  run id
-- Returns 1 when a bell was rung, 0 when no process has claimed the run's bell.
local bell = redis.call('GET', KEYS[1])
if not bell then
  return 0
end
redis.call('XADD', bell, 'MAXLEN', '~', '10000', '*', 'r', ARGV[1])
return 1
