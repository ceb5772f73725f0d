-- slowdown.lua: start or deepen an account's slow_down ramp (now.lua and
-- bucket.lua are prepended by Go, for script_now and ramp_fraction). The
-- fraction in force now is cut, and from now on grows by the factor
-- 1+growth per interval until it is back at 1.
-- One incident is cut once: slow_downs arriving within the cooldown of the
-- last cut (several workers answered 503 for the same burst) leave the ramp
-- alone; a slow_down after that cuts again from the current fraction.
--
-- KEYS[1] limits hash    promptq:{acct}:limits (fields ramp_*: see bucket.lua)
--
-- ARGV[1] '' (now from Redis TIME) or, in tests only, now in ms epoch
-- ARGV[2] cut: the new fraction is the current one times this (0 < cut < 1)
-- ARGV[3] growth per interval (0.5 = +50%)
-- ARGV[4] interval ms
-- ARGV[5] minimum fraction: a ramp never starts below it
-- ARGV[6] cooldown ms: no second cut within this long of the last one
--
-- Returns the new fraction as a string (fixed notation, 6 decimals).

local now = script_now(ARGV[1])
local h = redis.call('HMGET', KEYS[1], 'ramp_f', 'ramp_ts', 'ramp_g', 'ramp_iv')
local f = ramp_fraction(h[1], h[2], h[3], h[4], now)
local last = tonumber(h[2])
if last and f < 1 and now - last < tonumber(ARGV[6]) then
  return fmt(f)
end
f = math.max(tonumber(ARGV[5]), f * tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 'ramp_f', fmt(f), 'ramp_ts', now, 'ramp_g', ARGV[3], 'ramp_iv', ARGV[4])
return fmt(f)
