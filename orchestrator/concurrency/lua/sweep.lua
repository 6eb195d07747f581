-- sweep.lua: the periodic clean-up a coordinator runs: drop expired leases (a dead holder's
-- slots come back within the lease time) and grant every waiter of every bucket that can now
-- be granted (also after a limit was raised or deleted), with slot_granted events.
-- Runs after _lib.lua (prepended at load time), which states KEYS[1..5], ARGV[1..4] and the
-- key schema.
-- No further ARGV.
-- Returns the number of grants made.
purge()
local affected = {}
mark(affected, redis.call('SMEMBERS', K_BUCKETS))
return admit(affected, nil)
