-- settle/limits.lua: what a response teaches about the account's buckets:
-- the limits, each bucket's capacity, and the levels refilled to now. The
-- state of one settle is the table s that settle_read returns and the other
-- parts fill in:
--   h                       the limits hash's fields (settle_read reads them)
--   ramp, elapsed, hat      the slow_down ramp fraction, ms since the levels'
--                           ts, the newest send time whose headers were used
--   fields                  the limits hash's fields to write (settle_write)
--   learned_r, learned_t    the limits known before this response
--   new_r, new_t            the limits known after it
--   old_capl_r, old_capl_t  the capacities learned before it
--   capl_r, capl_t          the capacities learned after it
--   rrem, trem, trem_bad    the remaining figures (-1 unknown or garbage)
--   rl, rcap, tl, tcap      the limits in force and capacities, shaped
--   rlvl, tlvl              the levels (nil without a limit)

-- settle_set appends field and value to the fields to write.
local function settle_set(fields, field, value)
  table.insert(fields, field)
  table.insert(fields, value)
end

-- settle_read reads the account's limits hash and starts the state s.
local function settle_read(limits_key, now)
  local h = redis.call('HMGET', limits_key, 'rlim', 'rlvl', 'tlim', 'tlvl', 'ts', 'hat', 'rcapl', 'tcapl',
    'ramp_f', 'ramp_ts', 'ramp_g', 'ramp_iv')
  local s = {h = h}
  -- The slow_down ramp fraction shapes the buckets exactly as in reserve.lua.
  s.ramp = ramp_fraction(h[9], h[10], h[11], h[12], now)
  local ts = tonumber(h[5]) or now
  s.elapsed = now - ts
  if s.elapsed < 0 then
    s.elapsed = 0
  end
  s.fields = {'ts', math.max(ts, now)}
  s.hat = tonumber(h[6])
  s.learned_r, s.learned_t = tonumber(h[1]) or 0, tonumber(h[3]) or 0
  s.old_capl_r, s.old_capl_t = tonumber(h[7]) or 0, tonumber(h[8]) or 0
  return s
end

-- settle_limit is the limit to keep: a limit header always wins; an
-- inferred limit only fills a gap.
local function settle_limit(learned, header, inferred)
  if header > 0 then
    return header
  elseif learned <= 0 and inferred > 0 then
    return inferred
  end
  return learned
end

-- Learn each bucket's capacity: a bucket refilling limit/60s that is full
-- after reset holds remaining + reset*rate. Keep the largest seen (a reading
-- errs low by the fraction remaining drops), never above the limit.
local function learn_cap(limit, rem, reset_ms, old)
  if limit <= 0 or rem < 0 or reset_ms < 0 then
    return old
  end
  -- Round to nearest: providers round reset up to the ms, which can tip a
  -- ceiling over by one (a 5-request bucket read as 6 would let an idle
  -- moment end in a 429).
  local seen = math.min(limit, math.floor(rem + reset_ms * limit / 60000 + 0.5))
  return math.max(old, seen, 1)
end

-- A limit that changed (the provider halved it, say) starts its capacity afresh.
local function cap_base(new, old_lim, old_cap)
  if new ~= old_lim then return 0 end
  return old_cap
end

-- settle_learn learns the limits and capacities from the headers in A and
-- refuses remaining figures that cannot be true (counted in the
-- calibration's 'bad', as is A.bad).
local function settle_learn(calib_key, A, s)
  s.new_r = settle_limit(s.learned_r, A.limit_requests, A.inferred_requests)
  s.new_t = settle_limit(s.learned_t, A.limit_tokens, A.inferred_tokens)
  if s.new_r ~= s.learned_r then
    settle_set(s.fields, 'rlim', s.new_r)
  end
  if s.new_t ~= s.learned_t then
    settle_set(s.fields, 'tlim', s.new_t)
  end

  -- A remaining figure above the limit is garbage: it must not raise the
  -- level nor teach the calibration anything.
  s.rrem, s.trem = A.remaining_requests, A.remaining_tokens
  if s.new_r > 0 and s.rrem > s.new_r then s.rrem = -1 end
  -- (Without a learned limit, remaining above the configured per-minute cap
  -- is as impossible.)
  s.trem_bad = (s.new_t > 0 and s.trem > s.new_t) or (s.new_t <= 0 and A.tpm > 0 and s.trem > A.tpm)
  if s.trem_bad then
    redis.call('HINCRBY', calib_key, 'bad', 1)
    s.trem = -1
  end
  if A.bad then
    redis.call('HINCRBY', calib_key, 'bad', 1)
  end

  s.capl_r = learn_cap(s.new_r, s.rrem, A.reset_requests_ms, cap_base(s.new_r, s.learned_r, s.old_capl_r))
  s.capl_t = learn_cap(s.new_t, s.trem, A.reset_tokens_ms, cap_base(s.new_t, s.learned_t, s.old_capl_t))
  if s.capl_r ~= s.old_capl_r then
    settle_set(s.fields, 'rcapl', s.capl_r)
  end
  if s.capl_t ~= s.old_capl_t then
    settle_set(s.fields, 'tcapl', s.capl_t)
  end
end

-- settle_refill refills the levels to now under the old shape; the new
-- shape (rl, rcap, tl, tcap) clamps them when they are written.
local function settle_refill(A, s)
  local orl, orcap, orrate = ramp_shape(s.learned_r, A.rpm, A.burst_ms, s.old_capl_r, s.ramp)
  local otl, otcap, otrate = ramp_shape(s.learned_t, A.tpm, A.burst_ms, s.old_capl_t, s.ramp)
  s.rl, s.rcap = ramp_shape(s.new_r, A.rpm, A.burst_ms, s.capl_r, s.ramp)
  s.tl, s.tcap = ramp_shape(s.new_t, A.tpm, A.burst_ms, s.capl_t, s.ramp)
  if orl > 0 then
    s.rlvl = refill(tonumber(s.h[2]), orcap, orrate, s.elapsed)
  end
  if otl > 0 then
    s.tlvl = refill(tonumber(s.h[4]), otcap, otrate, s.elapsed)
  end
end

-- settle_write clamps the levels to the new capacities and writes the
-- limits hash.
local function settle_write(limits_key, s)
  if s.rl > 0 and s.rlvl then
    if s.rlvl > s.rcap then s.rlvl = s.rcap end
    settle_set(s.fields, 'rlvl', fmt(s.rlvl))
  end
  if s.tl > 0 and s.tlvl then
    if s.tlvl > s.tcap then s.tlvl = s.tcap end
    settle_set(s.fields, 'tlvl', fmt(s.tlvl))
  end
  redis.call('HSET', limits_key, unpack(s.fields))
end
