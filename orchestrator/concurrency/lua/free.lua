-- free.lua: administrative release regardless of fencing token (`orchestrator concurrency
-- free`): every lease of a run, or one lease, held or waiting. Then grant the waiters that
-- can now be granted (slot_granted events), as release.lua does.
-- Runs after _lib.lua (prepended at load time), which states KEYS[1..5], ARGV[1..4] and the
-- key schema.
-- ARGV[5]  'run' or 'lease'
-- ARGV[6]  the run id or the lease id
-- Returns the number of leases freed.
local mode, id = ARGV[5], ARGV[6]

local affected = purge()
local ids
if mode == 'run' then
  ids = redis.call('SMEMBERS', run_key(id))
else
  ids = {}
  if redis.call('EXISTS', lease_key(id)) == 1 then
    ids[1] = id
  end
end
for _, lease_id in ipairs(ids) do
  mark(affected, drop(lease_id))
end
if mode == 'run' then
  redis.call('DEL', run_key(id))
end
admit(affected, nil)
return #ids
