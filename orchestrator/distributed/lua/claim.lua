-- claim.lua: a worker takes a queued step attempt before running it, and announces its start.
-- KEYS[1]  attempt hash     <p>:attempt:<attempt_id>   fields: state, worker, token, started_at
--                           (and reserved_by: the worker whose main process took the message)
-- KEYS[2]  heartbeat key    <p>:attempt:<attempt_id>:hb (string, expires unless renewed)
-- KEYS[3]  run event stream <p>:run:<run_id>:events    (entries: field "e" = event JSON)
-- KEYS[4]  running attempts <p>:attempts:running       (zset: attempt id -> claim time, ms)
-- ARGV[1]  worker id
-- ARGV[2]  claim token (random, per delivery)
-- ARGV[3]  heartbeat ttl in milliseconds
-- ARGV[4]  STEP_START event JSON, appended to the stream on a successful claim ("" for none)
-- ARGV[5]  seconds the attempt record is kept
-- ARGV[6]  the attempt id (member of KEYS[4])
-- An attempt with no state yet is queued: the coordinator sends the message without writing
-- a record (a round trip saved per step); cancel and loss write the state, so a message they
-- overtook finds it and does nothing.
-- Returns "claimed" (also when this same token claimed it already: a call repeated after a
-- lost reply), or the attempt's current state ("running", "done", "lost", "canceled") when it
-- is not queued (a redelivered or duplicate message).
local fields = redis.call('HMGET', KEYS[1], 'state', 'token')
local state = fields[1]
if state and state ~= 'queued' then
  if state == 'running' and fields[2] == ARGV[2] then
    return 'claimed'
  end
  return state
end
local now = redis.call('TIME')
redis.call('HSET', KEYS[1], 'state', 'running', 'worker', ARGV[1], 'token', ARGV[2],
  'started_at', now[1] .. '.' .. string.format('%06d', now[2]))
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[4], now[1] * 1000 + math.floor(now[2] / 1000), ARGV[6])
if ARGV[4] ~= '' then
  redis.call('XADD', KEYS[3], '*', 'e', ARGV[4])
end
return 'claimed'
