-- done.lua: finish an auto-resume claimed with clear.lua.
--
-- KEYS[1]  pause hash (keys.Pause(acct))
-- ARGV[1]  claim token passed to clear.lua
--
-- Deletes the record only if it still carries this claim (a pause written
-- since the claim replaced the record and removed the claim, so it survives).
--
-- Returns 1 if the record was deleted, 0 otherwise.
if redis.call('HGET', KEYS[1], 'claim_by') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
