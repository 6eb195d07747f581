-- _create.lua: how a new run is stored, shared by create.lua and launch.lua. It is not run on
-- its own: the Python loader (orchestrator/storage/redis.py) prepends it to those scripts, so
-- each starts with store_run defined and these KEYS and ARGV:
-- KEYS[1]  run record       <p>:run:<run_id>            (string: RunRecord JSON)
-- KEYS[2]  runs             <p>:runs                    (zset: run id -> created_at)
-- KEYS[3]  runs sequence    <p>:runs:seq                (hash: run id -> creation sequence)
-- KEYS[4]  sequence counter <p>:seq                     (string: INCR)
-- KEYS[5]  status index     <p>:runs:status:<status>    (zset: run id -> created_at; the
--                                                        record's status)
-- KEYS[6]  job index        <p>:runs:job:<job_name>     (zset: run id -> created_at)
-- KEYS[7]  runs feed        <p>:runs:feed               (stream: r = run id, s = status)
-- KEYS[8]  parent's children <p>:run:<parent>:children  (zset: run id -> created_at; only
--                                                        written when ARGV[4] names a parent)
-- KEYS[first_tag..#KEYS]   tag indexes <p>:runs:tag:<len>:<key>=<value> (zset: run id ->
--                          created_at), one per tag of the run, after the calling script's
--                          own keys (store_run is given where they start)
-- ARGV[1]  record JSON      ARGV[2] run id              ARGV[3] created_at (seconds, as text)
-- ARGV[4]  parent run id ("" for none)                  ARGV[5] the record's status
-- The record and its index entries appear together: a status event stored meanwhile finds
-- either no run or an indexed one (status_event.lua moves it between status indexes).

-- Store the run; returns its creation sequence number, or false when the id is taken.
local function store_run(first_tag)
  if redis.call('SET', KEYS[1], ARGV[1], 'NX') == false then
    return false
  end
  local seq = redis.call('INCR', KEYS[4])
  redis.call('HSET', KEYS[3], ARGV[2], seq)
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
  redis.call('ZADD', KEYS[5], ARGV[3], ARGV[2])
  redis.call('ZADD', KEYS[6], ARGV[3], ARGV[2])
  if ARGV[4] ~= '' then
    redis.call('ZADD', KEYS[8], ARGV[3], ARGV[2])
  end
  for i = first_tag, #KEYS do
    redis.call('ZADD', KEYS[i], ARGV[3], ARGV[2])
  end
  redis.call('XADD', KEYS[7], 'MAXLEN', '~', '10000', '*', 'r', ARGV[2], 's', ARGV[5])
  return seq
end
