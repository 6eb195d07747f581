-- own.lua: who drives a run. The owner record is a hash with an expiry read against Redis
-- TIME (not a key TTL), so a lapsed owner stays visible: `run show` can say whose lease on the
-- run lapsed, and when.
-- KEYS[1]  owner record  <p>:run:<run_id>:owner   hash: owner, since (ms), expires (ms)
-- KEYS[2]  active runs   <p>:runs:active          set of run ids being driven (or to adopt)
-- ARGV[1]  "claim"   take the run if nobody owns it or its owner lapsed; it joins the active
--                    set (adoptable if we die)
--          "renew"   extend our lease (0 when the record is gone: released, or lost with the
--                    server's data; the run is then adopted from the active set)
--          "release" give the run up unfinished (another owner adopts it)
--          "finish"  the run ended: drop the record and leave the active set
-- ARGV[2]  owner id
-- ARGV[3]  lease in milliseconds (claim, renew)
-- ARGV[4]  run id
-- Returns 1 when done, else 0 (claim: someone else owns the run; renew, release, finish:
-- another owner has taken the run over, and this one must not touch it).
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
local fields = redis.call('HMGET', KEYS[1], 'owner', 'expires')
local owner, expires = fields[1], tonumber(fields[2] or '0')
local op, me, lease = ARGV[1], ARGV[2], tonumber(ARGV[3])

if op == 'claim' then
  if owner and owner ~= me and expires > now then
    return 0
  end
  redis.call('HSET', KEYS[1], 'owner', me, 'since', string.format('%.0f', now),
    'expires', string.format('%.0f', now + lease))
  redis.call('SADD', KEYS[2], ARGV[4])
  return 1
end
if owner and owner ~= me then
  return 0
end
if op == 'renew' then
  if not owner then
    return 0
  end
  redis.call('HSET', KEYS[1], 'expires', string.format('%.0f', now + lease))
  return 1
end
redis.call('DEL', KEYS[1])
if op == 'finish' then
  redis.call('SREM', KEYS[2], ARGV[4])
end
return 1
