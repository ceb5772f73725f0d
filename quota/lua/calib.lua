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
--   headers  x-ratelimit-remaining-tokens of two requests sent one after
--            the other: the provider's level fell by what it charged for
--            the second, less the refill in between (see cal_observe)
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
--   py, pc, pt, pnotok  the pool of samples not yet pushed (cal_pool):
--              input charged, chars and tokens bases, '1' when a request
--              in it had no tokens basis

local CAL_RING = 24
local CAL_MIN = 4
local CAL_Q = 0.8
local CAL_MAX = 20
-- Samples are pooled until they hold this many tokens of the chars basis.
local CAL_POOL = 256
-- The least input charge per unit of the chars basis taken as a sample:
-- no tokenizer counts text at less than a twentieth of characters/4.
local CAL_LEAST = 0.05
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

-- cal_member parses a sent-set member: id:chars:tokens:max_output, with
-- :remaining:limit appended once its response was read (cal_observe).
-- Returns chars, tokens, max_output, remaining (nil = not read), limit.
local function cal_member(m)
  local c, t, o, rem, lim = string.match(m, '^[^:]*:(%d+):(%d+):(%d+):?(%d*):?(%d*)$')
  if not c then
    return nil
  end
  return tonumber(c), tonumber(t), tonumber(o), tonumber(rem), tonumber(lim)
end

-- cal_pool adds one request's input charge y and bases to the pool, and
-- pushes the pool's ratios into the rings once it holds CAL_POOL tokens of
-- the chars basis: a single short prompt's ratio is mostly timing noise.
local function cal_pool(ck, y, c, t)
  -- A charge of (almost) nothing for a real input, or one far above the
  -- basis, is a figure that cannot be right (a gateway echoing
  -- remaining = limit, a stale figure): refused, counted.
  if y > CAL_MAX * math.max(c, t, 1) or y < CAL_LEAST * c then
    redis.call('HINCRBY', ck, 'bad', 1)
    return
  end
  cal_source(ck, 'headers')
  local p = redis.call('HMGET', ck, 'py', 'pc', 'pt', 'pnotok')
  local py, pc, pt = (tonumber(p[1]) or 0) + y, (tonumber(p[2]) or 0) + c, (tonumber(p[3]) or 0) + t
  local notok = p[4] == '1' or t <= 0
  if pc < CAL_POOL then
    redis.call('HSET', ck, 'py', py, 'pc', pc, 'pt', pt, 'pnotok', notok and '1' or '0')
    return
  end
  redis.call('HDEL', ck, 'py', 'pc', 'pt', 'pnotok')
  local rt
  if not notok and pt > 0 then rt = py / pt end
  cal_add(ck, py / pc, rt)
end

-- cal_observe learns from a response's remaining-tokens figure rem: the
-- provider's level just after it admitted the request sent at `at` (ms)
-- whose sent-set member is member, under its token limit (per minute) and
-- bucket capacity cap. charged is false for a request it refused.
--
-- The member gets the reading appended. Two requests next to each other
-- in the sent set (nothing charged between them) whose readings are both
-- known give the later one's charge exactly:
--     charged = min(cap, rem_before + (at - at_before) * limit/60000) - rem
-- (the capacity bounds the refill of an idle moment). Its output allowance
-- is known; the rest is its input charge, compared with its bases. Each
-- pair is used by whichever of its two responses is read second. Pairs
-- sent less than win ms apart may have reached the provider in the other
-- order and are skipped.
local function cal_observe(ck, sk, member, at, rem, limit, cap, win, now, charged)
  if rem > limit then
    redis.call('HINCRBY', ck, 'bad', 1)
    return
  end
  redis.call('PEXPIRE', ck, 7 * 86400000)
  if not charged or redis.call('ZREM', sk, member) == 0 then
    return -- refused (not charged), or read already (a stream's opening)
  end
  redis.call('ZADD', sk, at, member .. ':' .. rem .. ':' .. limit)
  local c, t, o = cal_member(member)
  if not c then
    return
  end
  local rate = limit / 60000
  local prev = redis.call('ZREVRANGEBYSCORE', sk, '(' .. at, '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #prev == 2 then
    local _, _, _, prem, plim = cal_member(prev[1])
    local pat = tonumber(prev[2])
    if prem and plim == limit and at - pat >= win then
      cal_pool(ck, math.min(cap, prem + (at - pat) * rate) - rem - o, c, t)
    end
  end
  local nxt = redis.call('ZRANGEBYSCORE', sk, '(' .. at, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #nxt == 2 then
    local nc, nt, no, nrem, nlim = cal_member(nxt[1])
    local nat = tonumber(nxt[2])
    if nrem and nlim == limit and nat - at >= win then
      cal_pool(ck, math.min(cap, rem + (nat - at) * rate) - nrem - no, nc, nt)
    end
  end
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
