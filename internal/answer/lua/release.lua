-- release.lua: give up a claim whose call failed, so the task's retry may
-- call again at once. A stored answer or another attempt's claim is kept.
--
-- KEYS[1]  answer key (keys.Answer(acct, taskID))
-- ARGV[1]  owner of the claim to release
--
-- Returns 1 when the claim was released, 0 otherwise.
if redis.call('GET', KEYS[1]) == 'claim:' .. ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
