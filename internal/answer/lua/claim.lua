-- claim.lua: look up a task's idempotency record and, when there is none (or
-- only a claim that has expired), claim the task for one provider call.
--
-- KEYS[1]  answer key (keys.Answer(acct, taskID))
-- ARGV[1]  owner: unique per attempt (worker id and attempt number)
-- ARGV[2]  claim TTL in ms: how long the claimed call can still finish
--          (request timeout plus slack); Redis expires the claim itself, so
--          no caller's clock is involved
--
-- Returns one of
--   {'done', answer}        the answer is stored: do not call the provider
--   {'claimed', owner, ms}  another attempt's call may still finish within ms
--   {'ok'}                  claimed for ARGV[1]: call the provider
local v = redis.call('GET', KEYS[1])
if v then
  if string.sub(v, 1, 6) ~= 'claim:' then
    return {'done', v}
  end
  local owner = string.sub(v, 7)
  if owner ~= ARGV[1] then
    return {'claimed', owner, redis.call('PTTL', KEYS[1])}
  end
end
redis.call('SET', KEYS[1], 'claim:' .. ARGV[1], 'PX', ARGV[2])
return {'ok'}
