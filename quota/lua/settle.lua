-- settle.lua: close a reservation (bucket.lua is prepended by Go). It removes
-- the reservation from the in-flight set, reconciles the debit with what the
-- provider charged, learns limits from the response headers and moves the
-- levels to the provider's remaining figures.
--
-- KEYS[1] limits hash    promptq:{acct}:limits (fields: see bucket.lua)
-- KEYS[2] inflight zset  promptq:{acct}:inflight
-- KEYS[3] day hash       promptq:{acct}:day:<date of the reservation>
-- KEYS[4] stats hash     promptq:{acct}:stats (est_n, est_abs, est_rel)
-- KEYS[5] tenants hash   promptq:{acct}:tenants (read only; tenant -> budget JSON)
-- KEYS[6] tenant hash    promptq:{acct}:tenant:<tenant of the reservation>
-- KEYS[7] calib hash     promptq:{acct}:calib (see calib.lua)
-- KEYS[8] sent zset      promptq:{acct}:sent (see reserve.lua)
--
-- ARGV[1]  '' (now from Redis TIME) or, in tests only, now in ms epoch
-- ARGV[2]  mode: 'settle' (usage known), 'unknown' (outcome unknown: keep the
--          debit), 'refund' (the provider did not charge: give it back) or
--          'sync' (a stream just opened: apply its headers, keep the
--          reservation in flight for the settle that follows)
-- ARGV[3]  inflight member of the reservation
-- ARGV[4]  reserved requests
-- ARGV[5]  reserved tokens
-- ARGV[6]  reservation time, ms epoch
-- ARGV[7]  settle: tokens the provider's TPM bucket charged
-- ARGV[8]  settle: actual total tokens (billed; goes to the daily counter)
-- ARGV[9]  settle: estimated input tokens (<= 0: no estimate sample)
-- ARGV[10] settle: actual input tokens
-- ARGV[11] configured requests per minute (0 = none)
-- ARGV[12] configured tokens per minute (0 = none)
-- ARGV[13] burst ms
-- ARGV[14] x-ratelimit-limit-requests (-1 unknown)
-- ARGV[15] x-ratelimit-remaining-requests (-1 unknown)
-- ARGV[16] x-ratelimit-limit-tokens (-1 unknown)
-- ARGV[17] x-ratelimit-remaining-tokens (-1 unknown)
-- ARGV[18] requests limit inferred from remaining+reset (-1 none); used only
--          while no limit has been learned from a limit header
-- ARGV[19] tokens limit inferred likewise (-1 none)
-- ARGV[20] day hash TTL ms
-- ARGV[21] x-ratelimit-reset-requests in ms (-1 unknown)
-- ARGV[22] x-ratelimit-reset-tokens in ms (-1 unknown)
-- ARGV[23] reorder window ms: requests sent less than this apart may reach
--          the provider in either order (see "Header sync" below)
-- ARGV[24] tenant of the reservation ('' = none: KEYS[5], KEYS[6] untouched)
-- ARGV[25] budget day of the reservation, YYYY-MM-DD
-- ARGV[26] tenant burst ms: capacity of a tenant's buckets, as refill time
-- ARGV[27] the reservation's member of the sent set (id:chars:tokens:max_output)
-- ARGV[28] 1 when the caller refused an absurd accounting signal (negative
--          or impossibly large usage), counted in the calibration's 'bad';
--          else 0
--
-- Returns 1 when the reservation was still in flight (its debit was
-- reconciled), 0 when it had already been settled or had expired (the debit
-- is left alone, so settling twice is harmless). Headers are applied either way.
--
-- Header sync. The provider's remaining figure beats the local model, in both
-- directions. The provider measured it when this request reached it, so
-- in-flight reservations sent at or after this one's send time (A) were not
-- in it, and those sent within the reorder window W before it (N) may or may
-- not have been: requests sent a few ms apart, from different goroutines or
-- hosts, reach the provider in either order. The provider's level is thus
-- somewhere in
--     [remaining - A - N, remaining - A]
-- and the local level is moved into that interval by the smallest change:
-- lowered to its top when above (traffic the limiter never saw, estimate
-- error), raised to its bottom when below (capacity the local model wrongly
-- holds back: expired reservations, other clients' traffic ending), left
-- alone inside it, where the local model, which debits every reservation,
-- knows better. Taking the top as the provider's level would over-estimate
-- it by a whole request whenever a request sent just before this one was
-- overtaken, and a later reservation would turn that into a 429.
-- The provider has refilled since it measured (from about the send time
-- to now), and charged the requests sent after this one as they reached
-- it: the top is the provider's bucket replayed from remaining at the send
-- time, refill up to its capacity and those requests at their send times.
-- Up to half the provider's bucket of the refill since is then kept back:
-- the local level trails the provider's by that much, a margin against
-- estimate errors that costs burst headroom, not sustained rate. Refill
-- beyond it counts: without it a bucket smaller than a response latency
-- of refill (1 s buckets, 2 s answers) would hold the rate at
-- bucket/latency. Which responses may move the levels, with hat the newest send time
-- whose headers were used:
--   send time >= hat + W   newer than every response used: moves the levels
--                          into the interval
--   within W of hat        order unknown (it may have reached the provider
--                          before a response already used, or after it but
--                          settled later, so that one is no longer in
--                          flight): may only lower the levels to the top
--   send time < hat - W    older: ignored, since newer facts already cover it
--                          and its "sent after" set is gone

-- Time comes from Redis (TIME), one clock for every worker: no caller's
-- clock can move shared state. A non-empty now argument is a test-only
-- override, passed only by internal/clock's Fake.
local function script_now(arg)
  if arg ~= nil and arg ~= '' then
    return tonumber(arg)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local now = script_now(ARGV[1])
local mode = ARGV[2]
local rc, tc, at = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])

local removed = 0
if mode ~= 'sync' then
  removed = redis.call('ZREM', KEYS[2], ARGV[3])
end
-- Any settled outcome ends the cold-start probe of reserve.lua.
redis.call('HSET', KEYS[1], 'seen', 1)

local h = redis.call('HMGET', KEYS[1], 'rlim', 'rlvl', 'tlim', 'tlvl', 'ts', 'hat', 'rcapl', 'tcapl',
  'ramp_f', 'ramp_ts', 'ramp_g', 'ramp_iv')
-- The slow_down ramp fraction shapes the buckets exactly as in reserve.lua.
local ramp = ramp_fraction(h[9], h[10], h[11], h[12], now)
local ts = tonumber(h[5]) or now
local elapsed = now - ts
if elapsed < 0 then
  elapsed = 0
end
local burst = tonumber(ARGV[13])
local cfg_r, cfg_t = tonumber(ARGV[11]), tonumber(ARGV[12])
local fields = {'ts', math.max(ts, now)}

-- Learn limits: a limit header always wins; an inferred limit only fills a gap.
local learned_r, learned_t = tonumber(h[1]) or 0, tonumber(h[3]) or 0
local new_r, new_t = learned_r, learned_t
if tonumber(ARGV[14]) > 0 then
  new_r = tonumber(ARGV[14])
elseif learned_r <= 0 and tonumber(ARGV[18]) > 0 then
  new_r = tonumber(ARGV[18])
end
if tonumber(ARGV[16]) > 0 then
  new_t = tonumber(ARGV[16])
elseif learned_t <= 0 and tonumber(ARGV[19]) > 0 then
  new_t = tonumber(ARGV[19])
end
if new_r ~= learned_r then
  table.insert(fields, 'rlim')
  table.insert(fields, new_r)
end
if new_t ~= learned_t then
  table.insert(fields, 'tlim')
  table.insert(fields, new_t)
end

-- A remaining figure above the limit is garbage: it must not raise the
-- level nor teach the calibration anything.
local rrem, trem = tonumber(ARGV[15]), tonumber(ARGV[17])
if new_r > 0 and rrem > new_r then rrem = -1 end
-- (Without a learned limit, remaining above the configured per-minute cap
-- is as impossible.)
local trem_bad = (new_t > 0 and trem > new_t) or (new_t <= 0 and cfg_t > 0 and trem > cfg_t)
if trem_bad then
  redis.call('HINCRBY', KEYS[7], 'bad', 1)
  trem = -1
end
if ARGV[28] == '1' then
  redis.call('HINCRBY', KEYS[7], 'bad', 1)
end

-- Learn each bucket's capacity: a bucket refilling limit/60s that is full
-- after reset holds remaining + reset*rate. Keep the largest seen (a reading
-- errs low by the fraction remaining drops), never above the limit.
local old_capl_r, old_capl_t = tonumber(h[7]) or 0, tonumber(h[8]) or 0
local capl_r, capl_t = old_capl_r, old_capl_t
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
capl_r = learn_cap(new_r, rrem, tonumber(ARGV[21]), cap_base(new_r, learned_r, old_capl_r))
capl_t = learn_cap(new_t, trem, tonumber(ARGV[22]), cap_base(new_t, learned_t, old_capl_t))
if capl_r ~= old_capl_r then
  table.insert(fields, 'rcapl')
  table.insert(fields, capl_r)
end
if capl_t ~= old_capl_t then
  table.insert(fields, 'tcapl')
  table.insert(fields, capl_t)
end

-- Refill to now under the old shape, then clamp to the new capacity.
local orl, orcap, orrate = ramp_shape(learned_r, cfg_r, burst, old_capl_r, ramp)
local otl, otcap, otrate = ramp_shape(learned_t, cfg_t, burst, old_capl_t, ramp)
local rl, rcap = ramp_shape(new_r, cfg_r, burst, capl_r, ramp)
local tl, tcap = ramp_shape(new_t, cfg_t, burst, capl_t, ramp)
local rlvl, tlvl
if orl > 0 then
  rlvl = refill(tonumber(h[2]), orcap, orrate, elapsed)
end
if otl > 0 then
  tlvl = refill(tonumber(h[4]), otcap, otrate, elapsed)
end

-- A daily counter never goes below zero, whatever a refund or a usage
-- figure asks (a counter driven negative would admit past the budget).
local function day_add(field, n)
  if redis.call('HINCRBY', KEYS[3], field, n) < 0 then
    redis.call('HSET', KEYS[3], field, 0)
  end
end

-- Reconcile the debit, once.
if removed == 1 then
  if mode == 'refund' then
    if rlvl then rlvl = rlvl + rc end
    if tlvl then tlvl = tlvl + tc end
    day_add('req', -rc)
    day_add('tok', -tc)
    redis.call('PEXPIRE', KEYS[3], ARGV[20])
  elseif mode == 'settle' then
    -- Usage corrects the debit only when the provider gave no remaining
    -- figure: its limiter may count otherwise than its billing (OpenAI
    -- charges characters/4 at admission), and the header sync below puts
    -- the level where the provider's is.
    if tlvl and trem < 0 then tlvl = tlvl + tc - tonumber(ARGV[7]) end
    local delta = tonumber(ARGV[8]) - tc
    if delta ~= 0 then
      day_add('tok', delta)
      redis.call('PEXPIRE', KEYS[3], ARGV[20])
    end
    local est, act = tonumber(ARGV[9]), tonumber(ARGV[10])
    if est > 0 and act > 0 then
      redis.call('HINCRBY', KEYS[4], 'est_n', 1)
      redis.call('HINCRBYFLOAT', KEYS[4], 'est_abs', fmt(math.abs(est - act)))
      redis.call('HINCRBYFLOAT', KEYS[4], 'est_rel', fmt((est - act) / act))
    end
  end
end

-- The tenant's buckets, if it (still) has a budget, get the same
-- reconciliation as the account's: all back on refund, the input estimate's
-- error on settle. Headers say nothing about a tenant.
local tenant = ARGV[24]
if removed == 1 and tenant ~= '' and mode ~= 'unknown' then
  local tb = tenant_budget(redis.call('HGET', KEYS[5], tenant))
  if tb then
    local th = redis.call('HMGET', KEYS[6], 'rlvl', 'tlvl', 'ts', 'day', 'dreq')
    local tts = tonumber(th[3]) or now
    local tel = math.max(0, now - tts)
    local tf = {'ts', math.max(tts, now)}
    local back_r, back_t = 0, tc - tonumber(ARGV[7])
    if mode == 'refund' then
      back_r, back_t = rc, tc
      if th[4] == ARGV[25] then
        table.insert(tf, 'dreq')
        table.insert(tf, math.max(0, (tonumber(th[5]) or 0) - rc))
      end
    end
    if tb.rpm > 0 and th[1] then
      local cap = tb.rpm * tonumber(ARGV[26]) / 60000
      table.insert(tf, 'rlvl')
      table.insert(tf, fmt(math.min(cap, refill(tonumber(th[1]), cap, tb.rpm / 60000, tel) + back_r)))
    end
    if tb.tpm > 0 and th[2] then
      local cap = tb.tpm * tonumber(ARGV[26]) / 60000
      table.insert(tf, 'tlvl')
      table.insert(tf, fmt(math.min(cap, refill(tonumber(th[2]), cap, tb.tpm / 60000, tel) + back_t)))
    end
    redis.call('HSET', KEYS[6], unpack(tf))
  end
end

-- The sent set keeps what the provider charged: a refused request leaves it.
if mode == 'refund' then
  redis.call('ZREM', KEYS[8], ARGV[27])
end

-- Calibrate the cost estimate (calib.lua) from the provider's remaining
-- tokens, or, from a provider that sends none, from usage.
if trem >= 0 and new_t > 0 then
  local cap = new_t
  if capl_t > 0 and capl_t < cap then cap = capl_t end
  cal_observe(KEYS[7], KEYS[8], ARGV[27], at, trem, new_t, cap, tonumber(ARGV[23]), now, mode ~= 'refund')
elseif mode == 'settle' and not trem_bad and trem < 0 then
  redis.call('HINCRBY', KEYS[7], 'missing', 1)
  local c, t = string.match(ARGV[27], ':(%d+):(%d+):%d+$')
  if c and tonumber(ARGV[10]) > 0 then
    cal_usage(KEYS[7], tonumber(ARGV[10]), tonumber(c), tonumber(t))
  end
end

-- Sync to the provider's remaining figures, if this response is fresh
-- (see "Header sync" above).
local win = tonumber(ARGV[23])
local hat = tonumber(h[6])
local sync_r = rl > 0 and rrem >= 0
local sync_t = tl > 0 and trem >= 0

-- sync moves level into [lo, hi] (see "Header sync"); with only_lower it
-- may only bring it down to hi.
local function sync(level, lo, hi, only_lower)
  if level == nil then
    return lo
  elseif level > hi then
    return hi
  elseif level < lo and not only_lower then
    return lo
  end
  return level
end

if (sync_r or sync_t) and (hat == nil or at >= hat - win) then
  -- Cost of in-flight reservations sent at or after this one (the provider
  -- had not seen them) and of those sent within the window before it (it
  -- may not have).
  local after_r, after_t, near_r, near_t = 0, 0, 0, 0
  local afters = {} -- {send ms, requests, tokens} of those sent after this one
  for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    local _, mr, mt, mat = string.match(m, '^([^:]*):(%d+):(%d+):(%d+)$')
    mat = tonumber(mat)
    if m == ARGV[3] then
      -- this request itself (still in flight in 'sync' mode): counted
    elseif mat and mat >= at then
      after_r = after_r + tonumber(mr)
      after_t = after_t + tonumber(mt)
      afters[#afters + 1] = {mat, tonumber(mr), tonumber(mt)}
    elseif mat and mat >= at - win then
      near_r = near_r + tonumber(mr)
      near_t = near_t + tonumber(mt)
    end
  end
  local only_lower = hat ~= nil and at < hat + win
  table.sort(afters, function(a, b) return a[1] < b[1] end)
  -- provider_now replays the provider's bucket from this response's
  -- measurement (rem at the send time) to now: refill at its own rate up
  -- to its capacity, less the requests sent after this one, each at its
  -- send time. It then keeps back the refill since the measurement, up to
  -- half the bucket: a margin against estimate errors that costs burst
  -- headroom, not rate (see "Header sync"). i is 2 (requests) or 3 (tokens).
  local function provider_now(rem, limit, capl, i, after)
    if limit <= 0 then
      return rem - after -- the provider's limit is unknown: nothing to credit
    end
    local cap, rate = limit, limit / 60000
    if capl > 0 and capl < cap then cap = capl end
    local lvl, t = rem, at
    for _, a in ipairs(afters) do
      local ta = math.min(a[1], now) -- one scheduled later is charged now
      lvl = math.min(cap, lvl + math.max(0, ta - t) * rate) - a[i]
      t = math.max(t, ta)
    end
    lvl = math.min(cap, lvl + math.max(0, now - t) * rate)
    -- Never below remaining less the later requests, which credits no
    -- refill at all (a full bucket has nothing to hold back).
    return math.max(rem - after, lvl - math.min(cap / 2, math.max(0, now - at) * rate))
  end
  if sync_r then
    local top = provider_now(rrem, new_r, capl_r, 2, after_r)
    rlvl = sync(rlvl, top - near_r, top, only_lower)
  end
  if sync_t then
    local top = provider_now(trem, new_t, capl_t, 3, after_t)
    tlvl = sync(tlvl, top - near_t, top, only_lower)
  end
  if hat == nil or at > hat then
    table.insert(fields, 'hat')
    table.insert(fields, at)
  end
end

if rl > 0 and rlvl then
  if rlvl > rcap then rlvl = rcap end
  table.insert(fields, 'rlvl')
  table.insert(fields, fmt(rlvl))
end
if tl > 0 and tlvl then
  if tlvl > tcap then tlvl = tcap end
  table.insert(fields, 'tlvl')
  table.insert(fields, fmt(tlvl))
end
redis.call('HSET', KEYS[1], unpack(fields))
return removed
