-- status_event.lua: append a run event that moves the run's status, and move the status, in
-- one step (the same rules as storage.base.status_change_allowed and updated_record).
-- KEYS[1]  run record  <p>:run:<run_id>          (string: RunRecord JSON as created)
-- KEYS[2]  run state   <p>:run:<run_id>:state    (hash: status, updated_at, start_time,
--                                                 end_time; overrides the record's fields)
-- KEYS[3]  run stream  <p>:run:<run_id>:events   (entries: field "e" = event JSON)
-- KEYS[4]  runs        <p>:runs                  (zset: run id -> created_at)
-- KEYS[5..11] the seven status indexes <p>:runs:status:<status> (zset: run id -> created_at),
--          one per status, named by ARGV[5..11]: every one is passed because the run's current
--          status, whose index the run leaves, is only known here
-- KEYS[12] runs feed   <p>:runs:feed           (stream: r = run id, s = status; one entry per
--                                               real status change)
-- ARGV[1]  event JSON   ARGV[2] the status it sets   ARGV[3] its time (seconds, as text)
-- ARGV[4]  run id       ARGV[5..11] the statuses of KEYS[5..11], in the same order
-- Rules: a finished run keeps its status; a run that has not ended never moves back
-- (QUEUED < STARTING < STARTED < CANCELING: a late RUN_STARTING after RUN_START is ignored); reaching STARTED sets start_time once; reaching a finished status sets
-- end_time. An event of a run with no record is appended all the same.
-- When the status really changes, the run moves from the old status's index to the new one's
-- (score: its created_at, the run's score in KEYS[4]).
-- Returns the event's stream id.
local progress = {QUEUED = 0, STARTING = 1, STARTED = 2, CANCELING = 3}
local function finished(s)
  return s == 'SUCCESS' or s == 'FAILURE' or s == 'CANCELED'
end
local function status_index(s)
  for i = 5, 11 do
    if ARGV[i] == s then
      return KEYS[i]
    end
  end
  return nil
end
local state = redis.call('HMGET', KEYS[2], 'status', 'start_time')
local current, started = state[1], state[2]
if not current then
  local text = redis.call('GET', KEYS[1])
  if text then
    local record = cjson.decode(text)  -- read only: the record is never rewritten here
    current = record.status
    if record.start_time ~= nil and record.start_time ~= cjson.null then
      started = 'set'
    end
  end
end
if current then
  local new, now = ARGV[2], ARGV[3]
  local allowed
  if finished(current) then
    allowed = (new == current)
  else
    allowed = finished(new) or progress[new] >= progress[current]
  end
  if allowed then
    redis.call('HSET', KEYS[2], 'status', new, 'updated_at', now)
    if new == 'STARTED' and not started then
      redis.call('HSET', KEYS[2], 'start_time', now)
    end
    if finished(new) and not finished(current) then
      redis.call('HSET', KEYS[2], 'end_time', now)
    end
    local created_at = new ~= current and redis.call('ZSCORE', KEYS[4], ARGV[4])
    if created_at then  -- false: no change, or a run not listed in <p>:runs
      local old_index = status_index(current)
      if old_index then
        redis.call('ZREM', old_index, ARGV[4])
      end
      redis.call('ZADD', status_index(new), created_at, ARGV[4])
    end
    if new ~= current then
      redis.call('XADD', KEYS[12], 'MAXLEN', '~', '10000', '*', 'r', ARGV[4], 's', new)
    end
  else
    redis.call('HSET', KEYS[2], 'updated_at', now)
  end
end
return redis.call('XADD', KEYS[3], '*', 'e', ARGV[1])
