-- snapshot.lua: read-only view of the limits for `orchestrator concurrency list` and wait
-- messages: the definitions, and per bucket its live holders and live waiters in rank order.
-- Runs after _lib.lua (prepended at load time), which states KEYS[1..5], ARGV[1..4] and the
-- key schema. Writes nothing; leases past their expiry are left out (not purged).
-- ARGV[5]  JSON list of buckets to show, or "" for every bucket with holders or waiters
-- Returns JSON {now_ms, defs: [spec, json, ...], buckets: [{bucket, limit (-1: none),
-- holders: [lease fields...], waiters: [lease fields...]}]}; lease fields are the lease hash
-- plus lease_id.
local wanted
if ARGV[5] ~= '' then
  wanted = cjson.decode(ARGV[5])
else
  wanted = redis.call('SMEMBERS', K_BUCKETS)
  table.sort(wanted)
end

local function lease_info(id)
  local flat = redis.call('HGETALL', lease_key(id))
  local info = {lease_id = id}
  for i = 1, #flat, 2 do
    info[flat[i]] = flat[i + 1]
  end
  return info
end

local out = {now_ms = NOW_MS, defs = redis.call('HGETALL', K_DEFS), buckets = {}}
for _, b in ipairs(wanted) do
  local holders, waiters = {}, {}
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', holders_key(b), '(' .. int(NOW_MS), '+inf')) do
    holders[#holders + 1] = lease_info(id)
  end
  for _, id in ipairs(redis.call('ZRANGE', waiters_key(b), 0, -1)) do
    local info = lease_info(id)
    if (tonumber(info.expiry) or 0) > NOW_MS then
      waiters[#waiters + 1] = info
    end
  end
  out.buckets[#out.buckets + 1] = {
    bucket = b, limit = limit_of(b) or -1, holders = holders, waiters = waiters,
  }
end
return cjson.encode(out)
