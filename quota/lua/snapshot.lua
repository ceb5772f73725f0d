-- snapshot.lua: read everything `promptq status` shows about an account, in
-- one round trip and one consistent view. Read only. Go prepends bucket.lua:
-- the levels are computed by the same shape, ramp_shape and refill as
-- reserve.lua and settle.lua use.
--
-- KEYS[1] limits hash    promptq:{acct}:limits
-- KEYS[2] inflight zset  promptq:{acct}:inflight
-- KEYS[3] day hash       promptq:{acct}:day:<today>
-- KEYS[4] stats hash     promptq:{acct}:stats
-- KEYS[5] calib hash     promptq:{acct}:calib
--
-- ARGV[1] now, ms epoch
-- ARGV[2] configured requests per minute (0 = none)
-- ARGV[3] configured tokens per minute (0 = none)
-- ARGV[4] burst ms: capacity of a configured bucket, as refill time
--
-- Returns {limits HGETALL, day HGETALL, stats HGETALL, in-flight count
-- (unexpired), calib HGETALL, ramp fraction, requests bucket, tokens
-- bucket}, a bucket being {limit, level, reset_ms, source} (limit -1 and
-- source 'unknown' when no limit is known). Fractions are strings (fmt):
-- Redis would truncate a Lua number to an integer.

local now = tonumber(ARGV[1])
local burst = tonumber(ARGV[4])
local h = redis.call('HMGET', KEYS[1], 'rlim', 'rlvl', 'tlim', 'tlvl', 'ts', 'rcapl', 'tcapl',
  'ramp_f', 'ramp_ts', 'ramp_g', 'ramp_iv')
local ramp = ramp_fraction(h[8], h[9], h[10], h[11], now)
local elapsed = math.max(0, now - (tonumber(h[5]) or now))

-- bucket shapes one bucket as reserve.lua does and refills it to now.
local function bucket(learned, cfg, learned_cap, level)
  local lim, cap, rate, source = ramp_shape(tonumber(learned) or 0, cfg, burst, tonumber(learned_cap), ramp)
  if lim <= 0 then
    return {'-1', '0', 0, 'unknown'}
  end
  local lvl = refill(tonumber(level), cap, rate, elapsed)
  return {fmt(lim), fmt(lvl), math.ceil((cap - lvl) / rate), source}
end

return {
  redis.call('HGETALL', KEYS[1]),
  redis.call('HGETALL', KEYS[3]),
  redis.call('HGETALL', KEYS[4]),
  redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[1], '+inf'),
  redis.call('HGETALL', KEYS[5]),
  fmt(ramp),
  bucket(h[1], tonumber(ARGV[2]), h[6], h[2]),
  bucket(h[3], tonumber(ARGV[3]), h[7], h[4]),
}
