-- pause.lua: set or extend an account's pause record (extend-only).
--
-- KEYS[1]  pause hash (keys.Pause(acct)): until, reason, kind, set_by, set_at
-- ARGV[1]  pause length in ms from now (Redis's clock); "0" = indefinite;
--          negative = already over (writes nothing)
-- ARGV[2]  reason
-- ARGV[3]  kind ("quota", "auth", "rate_limit", "daily", "manual", ...)
-- ARGV[4]  set_by
-- ARGV[5]  '' (now from Redis TIME) or, in tests only, now in ms
-- ARGV[6]  grace in ms: a finite record is kept until + grace, then expires
--
-- Rules: an active record (until == 0 or until > now) is only ever extended.
-- Indefinite beats any finite until; otherwise the later until wins; on a tie
-- the existing record stays. reason/kind/set_by follow the winner. A new
-- finite until that is not in the future writes nothing.
--
-- Returns {until, reason, kind, set_by, set_at, changed}: the effective
-- record after the call (all "" when no pause is active) and changed = "1" if
-- this call wrote the record, "0" otherwise (all strings).
-- Time comes from Redis (TIME), one clock for every worker: a worker whose
-- clock is wrong cannot end or shorten anyone's pause. A non-empty ARGV[5]
-- is a test-only override, passed only by internal/clock's Fake.
local now = script_now(ARGV[5]) -- now.lua, prepended by Go
local new = tonumber(ARGV[1])
if new ~= 0 then
  new = now + new
  if new <= now then
    new = now -- not in the future: writes nothing
  end
end
local cur = redis.call('HMGET', KEYS[1], 'until', 'reason', 'kind', 'set_by', 'set_at')

local active = false
local curUntil = tonumber(cur[1])
if curUntil then
  active = (curUntil == 0) or (curUntil > now)
end

local wins
if not active then
  wins = (new == 0) or (new > now)
elseif new == 0 then
  wins = (curUntil ~= 0)
else
  wins = (curUntil ~= 0) and (new > curUntil)
end

if not wins then
  if active then
    return {cur[1], cur[2] or '', cur[3] or '', cur[4] or '', cur[5] or '', '0'}
  end
  return {'', '', '', '', '', '0'}
end

-- DEL first: drops stale fields (such as a resume claim) and any TTL.
redis.call('DEL', KEYS[1])
local untilStr, nowStr = string.format('%d', new), string.format('%d', now)
redis.call('HSET', KEYS[1], 'until', untilStr, 'reason', ARGV[2], 'kind', ARGV[3],
  'set_by', ARGV[4], 'set_at', nowStr)
if new ~= 0 then
  redis.call('PEXPIRE', KEYS[1], new - now + tonumber(ARGV[6]))
end
return {untilStr, ARGV[2], ARGV[3], ARGV[4], nowStr, '1'}
