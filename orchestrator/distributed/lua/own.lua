-- own.lua: compare-and-renew / compare-and-release of a run's owner key.
-- KEYS[1]  owner key     <p>:run:<run_id>:owner  (string: owner id, expires unless renewed)
-- KEYS[2]  active runs   <p>:runs:active          (set of run ids being driven)
-- ARGV[1]  "renew", "release" (let another owner adopt the run) or "finish" (the run ended)
-- ARGV[2]  owner id
-- ARGV[3]  lease in milliseconds (renew)
-- ARGV[4]  run id
-- Returns 1 when this owner held the key, else 0 (another owner took the run over: it must
-- not be touched, nor the active set changed, by this one).
if redis.call('GET', KEYS[1]) ~= ARGV[2] then
  return 0
end
if ARGV[1] == 'renew' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
redis.call('DEL', KEYS[1])
if ARGV[1] == 'finish' then
  redis.call('SREM', KEYS[2], ARGV[4])
end
return 1
