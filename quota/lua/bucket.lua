-- bucket.lua: token-bucket helpers shared by reserve.lua, settle.lua,
-- slowdown.lua, snapshot.lua and tenant_state.lua (the one implementation
-- of the bucket arithmetic: Go computes no levels). Go prepends this file
-- to those scripts before loading them, so it has no KEYS or ARGV of its
-- own and returns nothing.
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
--           were used; see settle/sync.lua for how it orders responses
--   ramp_f, ramp_ts, ramp_g, ramp_iv
--           slow_down ramp (lua/slowdown.lua; all absent = none): at ramp_ts
--           (ms) the account could use the fraction ramp_f of its limits;
--           the fraction grows by the factor 1+ramp_g every ramp_iv ms
--
-- A bucket's limit is the learned limit capped by the configured one. Its rate
-- is limit/60000 per ms (OpenAI refills continuously over a minute). Its
-- capacity is the limit when it comes from headers, and limit*burst/60000 when
-- the configured cap is in force. A bucket without any limit does not
-- constrain (limit -1).
--
-- While a slow_down ramp is in force (fraction f < 1), f times the limit that
-- would otherwise be in force acts as a configured cap (ramp_shape), on the
-- request and the token bucket alike, so reserve.lua and settle.lua agree.

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


-- ramp_fraction returns the share of its limits the account may use at now
-- (1 = no ramp): f(now) = min(1, ramp_f * (1+ramp_g)^((now-ramp_ts)/ramp_iv)).
-- f, ts, g, iv are the ramp_* fields as read from the limits hash (nil = absent).
local function ramp_fraction(f, ts, g, iv, now)
  f, ts, g, iv = tonumber(f), tonumber(ts), tonumber(g), tonumber(iv)
  if not f or not ts or not g or not iv or iv <= 0 then
    return 1
  end
  local dt = now - ts
  if dt < 0 then
    dt = 0
  end
  local x = f * (1 + g) ^ (dt / iv)
  if x > 1 then
    return 1
  end
  return x
end

-- ramp_shape is shape under a ramp fraction f: with f < 1 and a known limit,
-- f times the limit shape would give becomes the configured cap (capacity
-- cap*burst/60000, and never above f times a learned capacity, so a
-- provider that holds less than a minute is not burst into). With f = 1 it
-- is shape itself.
local function ramp_shape(learned, cfg, burst_ms, learned_cap, f)
  if f >= 1 then
    return shape(learned, cfg, burst_ms, learned_cap)
  end
  local base = shape(learned, cfg, burst_ms, learned_cap)
  if base <= 0 then
    return shape(learned, cfg, burst_ms, learned_cap)
  end
  local lim, cap, rate = shape(learned, base * f, burst_ms, learned_cap)
  if learned_cap and learned_cap > 0 and cap > learned_cap * f then
    cap = learned_cap * f
  end
  return lim, cap, rate, 'ramp'
end

-- Tenant budgets. The tenants hash (keys.Tenants) maps a tenant name to its
-- budget as compact JSON written by Go:
-- {"rpm":N,"tpm":N,"daily_requests":N,"weight":N},
-- absent fields meaning no budget of that kind. A tenant's own hash
-- (keys.Tenant) holds, like the limits hash, rlvl, tlvl and ts for its
-- buckets, plus day (the budget day, YYYY-MM-DD) and dreq (requests that day).
-- Tenant buckets are shaped like configured caps: capacity budget*burst/60000,
-- rate budget/60000 per ms.

-- tenant_budget decodes a budget (raw as read by HGET; false/nil = none)
-- into {rpm, tpm, rpd, weight, capped}, or nil when the tenant has none.
-- weight (default 1) is the tenant's share in weighted fair sharing; capped
-- says whether any rate or daily budget is set (a budget may be a weight
-- alone).
local function tenant_budget(raw)
  if not raw then
    return nil
  end
  local b = cjson.decode(raw)
  local t = {rpm = tonumber(b.rpm) or 0, tpm = tonumber(b.tpm) or 0, rpd = tonumber(b.daily_requests) or 0,
    weight = tonumber(b.weight) or 0}
  if t.weight <= 0 then
    t.weight = 1
  end
  t.capped = t.rpm > 0 or t.tpm > 0 or t.rpd > 0
  return t
end
