-- slowdown.lua: start or deepen an account's slow_down ramp (bucket.lua is
-- prepended by Go for ramp_fraction). The fraction in force now is cut, and
-- from now on grows by the factor 1+growth per interval until it is back at 1.
-- A second slow_down within the same interval cuts again from the current
-- fraction.
--
-- KEYS[1] limits hash    promptq:{acct}:limits (fields ramp_*: see bucket.lua)
--
-- ARGV[1] now, ms epoch (caller's clock)
-- ARGV[2] cut: the new fraction is the current one times this (0 < cut < 1)
-- ARGV[3] growth per interval (0.5 = +50%)
-- ARGV[4] interval ms
-- ARGV[5] minimum fraction: a ramp never starts below it
--
-- Returns the new fraction as a string (fixed notation, 6 decimals).

local now = tonumber(ARGV[1])
local h = redis.call('HMGET', KEYS[1], 'ramp_f', 'ramp_ts', 'ramp_g', 'ramp_iv')
local f = ramp_fraction(h[1], h[2], h[3], h[4], now)
f = math.max(tonumber(ARGV[5]), f * tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 'ramp_f', fmt(f), 'ramp_ts', now, 'ramp_g', ARGV[3], 'ramp_iv', ARGV[4])
return fmt(f)
