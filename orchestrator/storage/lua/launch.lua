-- launch.lua: store a launched run and queue it for the coordinators, all at once, so a run
-- is never stored without being queued (or queued without its plan).
-- Runs after _create.lua (prepended at load time), which states KEYS[1..8] (the run record,
-- <p>:runs, <p>:runs:seq, <p>:seq, the status index of the record's status QUEUED, the job
-- index, the runs feed, the parent's children) and ARGV[1..5] (record JSON, run id,
-- created_at, parent run id, status). Then:
-- KEYS[9]  run event stream <p>:run:<run_id>:events   (entries: field "e" = event JSON)
-- KEYS[10] plan             <p>:plan:<digest>         (string: ExecutionPlan JSON)
-- KEYS[11] run plan link    <p>:run:<run_id>:plan     (string: the digest)
-- KEYS[12] run queue        <p>:runqueue              (zset: run id -> rank, lowest first)
-- KEYS[13] wake-ups         <p>:runqueue:wakeup       (list coordinators block on)
-- KEYS[14..] the run's tag indexes (see _create.lua)
-- ARGV[6]  RUN_ENQUEUED event JSON                    ARGV[7] plan JSON
-- ARGV[8]  digest           ARGV[9] seconds the plan is kept
-- ARGV[10] run priority (integer, higher first)
-- Returns the run's queue rank, or false when a run with this id exists already.
local seq = store_run(14)
if not seq then
  return false
end
redis.call('XADD', KEYS[9], '*', 'e', ARGV[6])
redis.call('SET', KEYS[10], ARGV[7], 'EX', ARGV[9])
redis.call('SET', KEYS[11], ARGV[8], 'EX', ARGV[9])
local rank = -tonumber(ARGV[10]) * 1e12 + seq
redis.call('ZADD', KEYS[12], string.format('%.0f', rank), ARGV[2])
redis.call('LPUSH', KEYS[13], ARGV[2])
redis.call('LTRIM', KEYS[13], 0, 9999)
return string.format('%.0f', rank)
