-- clear.lua: compare-and-clear an expired pause record (claim step of
-- auto-resume).
--
-- KEYS[1]  pause hash (keys.Pause(acct))
-- ARGV[1]  the "until" value the caller read; the record is cleared only if
--          it still holds exactly this value (a newer pause is never undone)
-- ARGV[2]  '' (now from Redis TIME) or, in tests only, now in ms
-- ARGV[3]  claim token (unique per call)
-- ARGV[4]  lease in ms: a claim older than this is considered abandoned
--          (its gate died between claiming and unpausing) and may be taken
--
-- The record is not deleted here: it is marked with claim_by/claim_at and
-- stays inactive (its until is in the past, so the quota limiter ignores it).
-- The winner unpauses the queues, then deletes the record with done.lua. If
-- the winner dies in between, another gate takes the claim once the lease has
-- passed, so queues are never left paused for good.
--
-- Returns 1 if this call won the claim, 0 otherwise (record gone, until
-- changed, not yet expired, indefinite, or claimed by someone else).
-- Time comes from Redis (TIME), one clock for every worker: no caller's
-- clock can move shared state. A non-empty now argument is a test-only
-- override, passed only by internal/clock's Fake.
local now = script_now(ARGV[2]) -- now.lua, prepended by Go
local cur = redis.call('HMGET', KEYS[1], 'until', 'claim_at')
if not cur[1] or cur[1] ~= ARGV[1] then
  return 0
end
local untilMs = tonumber(cur[1])
if not untilMs or untilMs == 0 or untilMs > now then
  return 0
end
if cur[2] and now - tonumber(cur[2]) < tonumber(ARGV[4]) then
  return 0
end
redis.call('HSET', KEYS[1], 'claim_by', ARGV[3], 'claim_at', ARGV[2])
return 1
