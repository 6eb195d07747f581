-- release.lua: free a lease's slots, or withdraw its waiting request, if the caller's fencing
-- token matches (a stale holder can never free a newer holder's slot). Then grant at once the
-- waiters that can now be granted, appending a slot_granted event to each one's run stream.
-- Runs after _lib.lua (prepended at load time), which states KEYS[1..5], ARGV[1..4] and the
-- key schema.
-- ARGV[5]  lease id
-- ARGV[6]  fencing token of the grant ("0" for a waiting lease)
-- Returns 1 when released, 0 when the lease is gone (expired, freed) or the token differs.
local id, token = ARGV[5], ARGV[6]

local affected = purge()
local released = 0
local current = redis.call('HGET', lease_key(id), 'token')
if current and current == token then
  mark(affected, drop(id))
  released = 1
end
admit(affected, nil)
return released
