-- bucket.lua: token-bucket helpers shared by reserve.lua, settle.lua and the
-- Go snapshot code (limiter.go mirrors shape/refill). Go prepends this file to
-- reserve.lua and settle.lua before loading them, so it has no KEYS or ARGV of
-- its own and returns nothing.
--
-- Fields of the limits hash (KEYS[1] of the scripts), per bucket p = 'r'
-- (requests) or 't' (tokens):
--   <p>lim  per-minute limit learned from x-ratelimit-limit-* (absent = not learned)
--   <p>capl bucket capacity learned from remaining + reset*rate (absent = a
--           full minute): providers that quantise limits per second hold
--           far less than a minute's worth, and a limiter that assumed a
--           minute would burst into their 429s after any idle moment
--   <p>lvl  units available at time ts (may be negative: debt repaid by refill)
--   ts      ms epoch of the last refill (never moves backwards)
--   hat     send time (ms) of the newest response whose remaining-* headers
--           were used; see settle.lua for how it orders responses
--
-- A bucket's limit is the learned limit capped by the configured one. Its rate
-- is limit/60000 per ms (OpenAI refills continuously over a minute). Its
-- capacity is the limit when it comes from headers, and limit*burst/60000 when
-- the configured cap is in force. A bucket without any limit does not
-- constrain (limit -1).

-- shape returns limit, capacity, rate per ms, source for one bucket.
-- learned_cap is the <p>capl field (0 or nil = a full minute).
local function shape(learned, cfg, burst_ms, learned_cap)
  if learned > 0 and (cfg <= 0 or learned <= cfg) then
    local cap = learned
    if learned_cap and learned_cap > 0 and learned_cap < learned then
      cap = learned_cap
    end
    return learned, cap, learned / 60000, 'headers'
  elseif cfg > 0 then
    return cfg, cfg * burst_ms / 60000, cfg / 60000, 'config'
  end
  return -1, 0, 0, 'unknown'
end

-- refill returns the level after elapsed ms, never above capacity. A bucket
-- never seen before starts full.
local function refill(level, cap, rate, elapsed)
  if level == nil then
    return cap
  end
  level = level + elapsed * rate
  if level > cap then
    level = cap
  end
  return level
end

-- fmt renders a level for HSET: fixed notation, identical on Redis and miniredis.
local function fmt(x)
  return string.format('%.6f', x)
end

