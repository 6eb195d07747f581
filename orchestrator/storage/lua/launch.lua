-- launch.lua: store a launched run and queue it for the coordinators, all at once, so a run
-- is never stored without being queued (or queued without its plan).
-- KEYS[1]  run record       <p>:run:<run_id>          (string: RunRecord JSON, status QUEUED)
-- KEYS[2]  runs             <p>:runs                  (zset: run id -> created_at)
-- KEYS[3]  runs sequence    <p>:runs:seq              (hash: run id -> creation sequence)
-- KEYS[4]  sequence counter <p>:seq                   (string: INCR)
-- KEYS[5]  run event stream <p>:run:<run_id>:events   (entries: field "e" = event JSON)
-- KEYS[6]  plan             <p>:plan:<digest>         (string: ExecutionPlan JSON)
-- KEYS[7]  run plan link    <p>:run:<run_id>:plan     (string: the digest)
-- KEYS[8]  run queue        <p>:runqueue              (zset: run id -> rank, lowest first)
-- KEYS[9]  wake-ups         <p>:runqueue:wakeup       (list coordinators block on)
-- ARGV[1]  record JSON      ARGV[2] run id            ARGV[3] created_at (seconds)
-- ARGV[4]  RUN_ENQUEUED event JSON                    ARGV[5] plan JSON
-- ARGV[6]  digest           ARGV[7] seconds the plan is kept
-- ARGV[8]  run priority (integer, higher first)
-- Returns the run's queue rank, or false when a run with this id exists already.
if redis.call('SET', KEYS[1], ARGV[1], 'NX') == false then
  return false
end
local seq = redis.call('INCR', KEYS[4])
redis.call('HSET', KEYS[3], ARGV[2], seq)
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('XADD', KEYS[5], '*', 'e', ARGV[4])
redis.call('SET', KEYS[6], ARGV[5], 'EX', ARGV[7])
redis.call('SET', KEYS[7], ARGV[6], 'EX', ARGV[7])
local rank = -tonumber(ARGV[8]) * 1e12 + seq
redis.call('ZADD', KEYS[8], string.format('%.0f', rank), ARGV[2])
redis.call('LPUSH', KEYS[9], ARGV[2])
redis.call('LTRIM', KEYS[9], 0, 9999)
return string.format('%.0f', rank)
