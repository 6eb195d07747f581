-- status_event.lua: append a run event that moves the run's status, and move the status, in
-- one step (the same rules as storage.base.status_change_allowed and updated_record).
-- KEYS[1]  run record  <p>:run:<run_id>          (string: RunRecord JSON as created)
-- KEYS[2]  run state   <p>:run:<run_id>:state    (hash: status, updated_at, start_time,
--                                                 end_time; overrides the record's fields)
-- KEYS[3]  run stream  <p>:run:<run_id>:events   (entries: field "e" = event JSON)
-- ARGV[1]  event JSON   ARGV[2] the status it sets   ARGV[3] its time (seconds, as text)
-- Rules: a finished run keeps its status; a CANCELING run does not go back to QUEUED,
-- STARTING or STARTED; reaching STARTED sets start_time once; reaching a finished status sets
-- end_time. An event of a run with no record is appended all the same.
-- Returns the event's stream id.
local function finished(s)
  return s == 'SUCCESS' or s == 'FAILURE' or s == 'CANCELED'
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
    allowed = not (current == 'CANCELING'
      and (new == 'QUEUED' or new == 'STARTING' or new == 'STARTED'))
  end
  if allowed then
    redis.call('HSET', KEYS[2], 'status', new, 'updated_at', now)
    if new == 'STARTED' and not started then
      redis.call('HSET', KEYS[2], 'start_time', now)
    end
    if finished(new) and not finished(current) then
      redis.call('HSET', KEYS[2], 'end_time', now)
    end
  else
    redis.call('HSET', KEYS[2], 'updated_at', now)
  end
end
return redis.call('XADD', KEYS[3], '*', 'e', ARGV[1])
