-- pause.lua: set or extend an account's pause record (extend-only).
--
-- KEYS[1]  pause hash (keys.Pause(acct)): until, reason, kind, set_by, set_at
-- ARGV[1]  until in ms since the epoch; "0" = indefinite
-- ARGV[2]  reason
-- ARGV[3]  kind ("quota", "auth", "rate_limit", "daily", "manual", ...)
-- ARGV[4]  set_by
-- ARGV[5]  now in ms (from the caller's injected clock)
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
local now = tonumber(ARGV[5])
local new = tonumber(ARGV[1])
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
redis.call('HSET', KEYS[1], 'until', ARGV[1], 'reason', ARGV[2], 'kind', ARGV[3],
  'set_by', ARGV[4], 'set_at', ARGV[5])
if new ~= 0 then
  redis.call('PEXPIRE', KEYS[1], new - now + tonumber(ARGV[6]))
end
return {ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], '1'}
