-- reserve/buckets.lua: the account's rate buckets (shaped by bucket.lua).
-- During a slow_down ramp the buckets are shaped by ramp_shape. A cost that
-- exceeds the ramped capacity but not the full one is admitted once the
-- bucket is full (the level goes into debt), rather than never.

-- buckets_read refills the account's buckets to now and returns them as
-- b = {ts, rl, rcap, rrate, rlvl, tl, tcap, trate, tlvl, wait} (rl, tl:
-- the limits in force, <= 0 = none, and then rlvl, tlvl are nil; wait:
-- ms until the cost c fits), or nil and the reply that refuses c:
-- TOO_LARGE, or WAIT while the cold-start probe holds admissions.
-- Expired reservations leave the in-flight set first; their debit stays,
-- since nobody knows whether the provider charged them.
local function buckets_read(K, A, now, c)
  redis.call('ZREMRANGEBYSCORE', K.inflight, '-inf', now)

  local h = redis.call('HMGET', K.limits, 'rlim', 'rlvl', 'tlim', 'tlvl', 'ts', 'rcapl', 'tcapl',
    'ramp_f', 'ramp_ts', 'ramp_g', 'ramp_iv')
  local b = {ts = tonumber(h[5]) or now}
  local elapsed = now - b.ts
  if elapsed < 0 then
    elapsed = 0 -- another host's clock ran ahead; wait for ours to catch up
  end
  local ramp = ramp_fraction(h[8], h[9], h[10], h[11], now)
  b.rl, b.rcap, b.rrate = ramp_shape(tonumber(h[1]) or 0, A.rpm, A.burst_ms, tonumber(h[6]), ramp)
  b.tl, b.tcap, b.trate = ramp_shape(tonumber(h[3]) or 0, A.tpm, A.burst_ms, tonumber(h[7]), ramp)
  local _, rfull = shape(tonumber(h[1]) or 0, A.rpm, A.burst_ms, tonumber(h[6]))
  local _, tfull = shape(tonumber(h[3]) or 0, A.tpm, A.burst_ms, tonumber(h[7]))

  if b.rl > 0 and c.rc > rfull then
    return nil, {TOO_LARGE, REQUESTS}
  end
  -- Too large only if even the least the provider may charge is: before the
  -- calibration knows the provider's formula, a CJK prompt's tokenizer count
  -- may be four times what a characters/4 limiter charges. A larger cost is
  -- admitted once the bucket is full (need is capped to the capacity below).
  if b.tl > 0 and c.least_in + c.tc - c.est_in > tfull then
    return nil, {TOO_LARGE, TOKENS}
  end

  if b.rl <= 0 and b.tl <= 0 and A.probe > 0 and redis.call('HEXISTS', K.limits, 'seen') == 0 then
    if redis.call('ZCARD', K.inflight) >= A.probe then
      return nil, {WAIT, 50, WHY_PROBE}
    end
  end

  b.wait = 0
  if b.rl > 0 then
    b.rlvl = refill(tonumber(h[2]), b.rcap, b.rrate, elapsed)
    local need = math.min(c.rc, b.rcap)
    if need > b.rlvl then
      b.wait = math.max(b.wait, math.ceil((need - b.rlvl) / b.rrate))
    end
  end
  if b.tl > 0 then
    b.tlvl = refill(tonumber(h[4]), b.tcap, b.trate, elapsed)
    local need = math.min(c.tc, b.tcap)
    if need > b.tlvl then
      b.wait = math.max(b.wait, math.ceil((need - b.tlvl) / b.trate))
    end
  end
  return b
end

-- buckets_left returns the levels of b in thousandths of their capacity
-- (1000 = full or no limit known; negative = in debt to scheduled turns).
local function buckets_left(b)
  local rf, tf = 1000, 1000
  if b.rl > 0 and b.rcap > 0 then
    rf = math.floor(1000 * b.rlvl / b.rcap)
  end
  if b.tl > 0 and b.tcap > 0 then
    tf = math.floor(1000 * b.tlvl / b.tcap)
  end
  return rf, tf
end

-- buckets_debit takes rc requests and tc tokens from the levels of b (they
-- go into debt for a scheduled turn, which refill pays back).
local function buckets_debit(limits_key, b, now, rc, tc)
  local fields = {'ts', math.max(b.ts, now)}
  if b.rl > 0 then
    table.insert(fields, 'rlvl')
    table.insert(fields, fmt(b.rlvl - rc))
  end
  if b.tl > 0 then
    table.insert(fields, 'tlvl')
    table.insert(fields, fmt(b.tlvl - tc))
  end
  redis.call('HSET', limits_key, unpack(fields))
end
