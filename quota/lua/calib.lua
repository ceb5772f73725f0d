-- calib.lua: cost calibration helpers shared by reserve.lua (the estimate)
-- and settle.lua (learning it). Go prepends this file, after bucket.lua, so
-- it has no KEYS or ARGV of its own and returns nothing.
--
-- The provider never says its formula; it says what it counted. A request's
-- input is known before it is sent by two bases (Go computes both):
--   chars   ceil(characters/4) of everything sent, plus framing per message
--           (OpenAI's documented rate-limit estimate)
--   tokens  the model's tokenizer count plus framing (0 = no tokenizer)
-- For each basis the calibration keeps a ring of ratios "input tokens the
-- provider charged / basis" and uses the basis whose ratios agree best with
-- each other (the provider's formula gives a flat ratio whatever the text:
-- prose, code or CJK), at an upper quantile of its ratios, so that an
-- estimate errs above the charge, not below. Before CAL_MIN samples the
-- estimate is the larger of the two bases.
--
-- Where samples come from (field src):
--   headers  x-ratelimit-remaining-tokens between two responses: the
--            provider's level fell by what it charged for the requests sent
--            in between, less the refill over that time (see cal_observe)
--   usage    usage.input_tokens, only while the account has never given a
--            header sample (a provider without rate-limit headers)
--
-- Fields of the calibration hash (keys.Calib):
--   src        'headers' | 'usage' (absent = no sample yet)
--   rc, rt     rings of ratios on the chars and tokens basis, comma-separated,
--              newest last, at most CAL_RING
--   kc, kt     upper quantile (CAL_Q) of each ring with >= CAL_MIN samples
--   sc, st     spread of each ring: (q90 - q10) / median
--   basis      'c' or 't': the basis in force (absent = none yet)
--   n          samples taken in all
--   bad        signals refused as absurd (remaining above the limit, a
--              charge of more than CAL_MAX times the basis, negative usage)
--   missing    responses that carried no remaining-tokens figure
--   at, rem, lim  the anchor: send time (ms), remaining tokens and token
--              limit of the last response used

local CAL_RING = 24
local CAL_MIN = 4
local CAL_Q = 0.9
local CAL_MAX = 20
-- The least share of its smaller basis a provider is assumed to charge for
-- a request's input, when telling whether its bucket may have been full.
local CAL_LEAST = 0.5
-- Sent requests are kept this long (ms): an anchor older than this cannot
-- be matched against them.
local CAL_KEEP = 120000

local function cal_ring(s)
  local out = {}
  if s then
    for x in string.gmatch(s, '[^,]+') do
      out[#out + 1] = tonumber(x)
    end
  end
  return out
end

-- cal_q is the q-quantile of a sorted array (nearest rank).
local function cal_q(sorted, q)
  local i = math.ceil(q * #sorted)
  if i < 1 then i = 1 end
  return sorted[i]
end

-- cal_push appends x to the ring in field f and returns the new ring.
local function cal_push(ck, f, x)
  local ring = cal_ring(redis.call('HGET', ck, f))
  ring[#ring + 1] = x
  while #ring > CAL_RING do
    table.remove(ring, 1)
  end
  local parts = {}
  for i, v in ipairs(ring) do
    parts[i] = string.format('%.4f', v)
  end
  redis.call('HSET', ck, f, table.concat(parts, ','))
  return ring
end

-- cal_stats returns the upper quantile and the spread of a ring, or nil
-- when it has too few samples.
local function cal_stats(ring)
  if #ring < CAL_MIN then
    return nil
  end
  local s = {}
  for i, v in ipairs(ring) do s[i] = v end
  table.sort(s)
  local med = cal_q(s, 0.5)
  local spread = 0
  if med > 0 then
    spread = (cal_q(s, 0.9) - cal_q(s, 0.1)) / med
  end
  return cal_q(s, CAL_Q), spread
end

-- cal_add records one sample (ratios on each basis; rt nil when unknown)
-- and chooses the basis whose ratios spread least.
local function cal_add(ck, rc, rt)
  local kc, sc = cal_stats(cal_push(ck, 'rc', rc))
  local kt, st
  if rt then
    kt, st = cal_stats(cal_push(ck, 'rt', rt))
  else
    kt, st = cal_stats(cal_ring(redis.call('HGET', ck, 'rt')))
  end
  redis.call('HINCRBY', ck, 'n', 1)
  local f = {}
  if kc then
    table.insert(f, 'kc'); table.insert(f, string.format('%.4f', kc))
    table.insert(f, 'sc'); table.insert(f, string.format('%.4f', sc))
  end
  if kt then
    table.insert(f, 'kt'); table.insert(f, string.format('%.4f', kt))
    table.insert(f, 'st'); table.insert(f, string.format('%.4f', st))
  end
  if kt and (not kc or st < sc) then
    table.insert(f, 'basis'); table.insert(f, 't')
  elseif kc then
    table.insert(f, 'basis'); table.insert(f, 'c')
  end
  if #f > 0 then
    redis.call('HSET', ck, unpack(f))
  end
end

-- cal_source switches the samples' source; a switch to headers drops the
-- usage samples, since the provider's own accounting beats billing counts.
local function cal_source(ck, src)
  local cur = redis.call('HGET', ck, 'src')
  if cur == src then
    return true
  end
  if src == 'usage' and cur == 'headers' then
    return false
  end
  redis.call('HDEL', ck, 'rc', 'rt', 'kc', 'kt', 'sc', 'st', 'basis')
  redis.call('HSET', ck, 'src', src)
  return true
end

-- cal_estimate returns the input tokens to reserve for a request with the
-- given bases, from the calibration hash ck, and the least the request
-- could be charged as far as the calibration knows: the estimate itself
-- once a factor is learned, the smaller basis before (the request may
-- only be refused as too large for the bucket on that figure).
local function cal_estimate(ck, chars, toks)
  local c = redis.call('HMGET', ck, 'basis', 'kc', 'kt')
  local kc, kt = tonumber(c[2]), tonumber(c[3])
  local est
  if c[1] == 't' and kt and toks > 0 then
    est = math.ceil(kt * toks - 1e-9)
  elseif kc then
    est = math.ceil(kc * chars - 1e-9)
  end
  if est then
    return est, est
  end
  local least = chars
  if toks > 0 and toks < chars then least = toks end
  return math.max(chars, toks), least
end

-- cal_observe learns from a response's remaining-tokens figure rem (the
-- provider's level just after it admitted the request sent at `at`, ms),
-- under the provider's token limit `limit` (per minute) and bucket capacity
-- cap. Between the anchor (the last response used) and this one the
-- provider's level rose by the refill and fell by what it charged for the
-- requests sent in (anchor, at], this one included, the first at t1:
--     charged = min(cap, anchor_rem + (t1 - anchor_at) * rate)
--               + (at - t1) * rate - rem,        rate = limit/60000 per ms
-- (If the bucket may have been full again after t1, no sample.) Their
-- max output allowances are known; the rest
-- is the input charge, compared with the sum of each basis. A response sent
-- within win ms after the anchor, or before it, leaves the anchor alone.
-- sk is the sent-requests set.
local function cal_observe(ck, sk, at, rem, limit, cap, win, now)
  if rem > limit then
    redis.call('HINCRBY', ck, 'bad', 1)
    return
  end
  local a = redis.call('HMGET', ck, 'at', 'rem', 'lim')
  local aat, arem, alim = tonumber(a[1]), tonumber(a[2]), tonumber(a[3])
  if aat and alim == limit and at < aat + win then
    return
  end
  redis.call('HSET', ck, 'at', at, 'rem', rem, 'lim', limit)
  redis.call('PEXPIRE', ck, 7 * 86400000)
  if not aat or alim ~= limit or now - aat > CAL_KEEP then
    return
  end
  local sc, st, so, n, tok_ok, t1 = 0, 0, 0, 0, true, nil
  local sent = {} -- {send ms, least charge}
  local ms = redis.call('ZRANGEBYSCORE', sk, '(' .. aat, at, 'WITHSCORES')
  for i = 1, #ms, 2 do
    local c, t, o = string.match(ms[i], ':(%d+):(%d+):(%d+)$')
    if c then
      c, t, o = tonumber(c), tonumber(t), tonumber(o)
      sc, st, so, n = sc + c, st + t, so + o, n + 1
      if t <= 0 then tok_ok = false end
      if not t1 then t1 = tonumber(ms[i + 1]) end
      local least = c
      if t > 0 and t < c then least = t end
      sent[#sent + 1] = {tonumber(ms[i + 1]), o + CAL_LEAST * least}
    end
  end
  if n == 0 or sc <= 0 then
    return
  end
  -- Nothing was charged between the anchor and the first request sent
  -- after it (t1), so the provider's level then was the anchor's plus the
  -- refill, up to the bucket's capacity: an idle moment that filled the
  -- bucket still gives an exact sample.
  local rate = limit / 60000
  local level1 = math.min(cap, arem + (t1 - aat) * rate)
  -- Were the bucket full again between two of these requests, its refill
  -- then was lost and the sample would err high. Replay it with charges
  -- no provider would go below (CAL_LEAST of the smaller basis plus the
  -- output allowance): if even that level never reaches the capacity,
  -- nothing was lost.
  local lvl, t = level1, t1
  for _, m in ipairs(sent) do
    lvl = lvl + (m[1] - t) * rate
    if lvl > cap then
      return
    end
    lvl, t = lvl - m[2], m[1]
  end
  local y = math.max(0, level1 + (at - t1) * rate - rem - so)
  if y > CAL_MAX * math.max(sc, st) then
    redis.call('HINCRBY', ck, 'bad', 1)
    return
  end
  cal_source(ck, 'headers')
  local rt
  if tok_ok and st > 0 then rt = y / st end
  cal_add(ck, y / sc, rt)
end

-- cal_usage learns from usage.input_tokens of one request with the given
-- bases, while no header sample was ever taken.
local function cal_usage(ck, input, chars, toks)
  if input < 0 or input > CAL_MAX * math.max(chars, toks, 1) then
    redis.call('HINCRBY', ck, 'bad', 1)
    return
  end
  if chars <= 0 or input == 0 or not cal_source(ck, 'usage') then
    return
  end
  local rt
  if toks > 0 then rt = input / toks end
  cal_add(ck, input / chars, rt)
  redis.call('PEXPIRE', ck, 7 * 86400000)
end
