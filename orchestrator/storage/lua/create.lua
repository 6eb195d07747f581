-- create.lua: store a new run (Instance.create_run) and add it to the run indexes at once.
-- Runs after _create.lua (prepended at load time), which states KEYS[1..8] and ARGV[1..5];
-- KEYS[9..] are the run's tag indexes.
-- Returns the run's creation sequence number, or false when a run with this id exists already.
return store_run(9)
