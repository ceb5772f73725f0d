-- settle.lua: close a reservation (now.lua, bucket.lua and calib.lua are
-- prepended by Go). It removes the reservation from the in-flight set,
-- reconciles the debit with what the provider charged, learns limits from
-- the response headers and moves the levels to the provider's remaining
-- figures.

local K = {
  limits   = KEYS[1], -- hash promptq:{acct}:limits (fields: see bucket.lua)
  inflight = KEYS[2], -- zset promptq:{acct}:inflight
  day      = KEYS[3], -- hash promptq:{acct}:day:<date of the reservation>
  stats    = KEYS[4], -- hash promptq:{acct}:stats (est_n, est_abs, est_rel)
  tenants  = KEYS[5], -- hash promptq:{acct}:tenants (read only; tenant -> budget JSON)
  tenant   = KEYS[6], -- hash promptq:{acct}:tenant:<tenant of the reservation>
  calib    = KEYS[7], -- hash promptq:{acct}:calib (see calib.lua)
  sent     = KEYS[8], -- zset promptq:{acct}:sent (see reserve.lua)
}

local A = {
  now                = ARGV[1],            -- '' (now from Redis TIME) or, in tests only, now in ms epoch
  mode               = ARGV[2],            -- 'settle', 'unknown', 'refund' or 'sync' (1)
  member             = ARGV[3],            -- inflight member of the reservation
  requests           = tonumber(ARGV[4]),  -- reserved requests
  tokens             = tonumber(ARGV[5]),  -- reserved tokens
  at_ms              = tonumber(ARGV[6]),  -- reservation (send) time, ms epoch
  charged            = tonumber(ARGV[7]),  -- settle: tokens the provider's TPM bucket charged
  total              = tonumber(ARGV[8]),  -- settle: actual total tokens (billed; goes to the daily counter)
  estimated_input    = tonumber(ARGV[9]),  -- settle: estimated input tokens (<= 0: no estimate sample)
  input              = tonumber(ARGV[10]), -- settle: actual input tokens
  rpm                = tonumber(ARGV[11]), -- configured requests per minute (0 = none)
  tpm                = tonumber(ARGV[12]), -- configured tokens per minute (0 = none)
  burst_ms           = tonumber(ARGV[13]), -- capacity of a configured bucket, as refill time
  limit_requests     = tonumber(ARGV[14]), -- x-ratelimit-limit-requests (-1 unknown)
  remaining_requests = tonumber(ARGV[15]), -- x-ratelimit-remaining-requests (-1 unknown)
  limit_tokens       = tonumber(ARGV[16]), -- x-ratelimit-limit-tokens (-1 unknown)
  remaining_tokens   = tonumber(ARGV[17]), -- x-ratelimit-remaining-tokens (-1 unknown)
  inferred_requests  = tonumber(ARGV[18]), -- requests limit inferred from remaining+reset (-1 none) (2)
  inferred_tokens    = tonumber(ARGV[19]), -- tokens limit inferred likewise (-1 none) (2)
  day_ttl_ms         = ARGV[20],           -- TTL of the day hash
  reset_requests_ms  = tonumber(ARGV[21]), -- x-ratelimit-reset-requests in ms (-1 unknown)
  reset_tokens_ms    = tonumber(ARGV[22]), -- x-ratelimit-reset-tokens in ms (-1 unknown)
  reorder_window_ms  = tonumber(ARGV[23]), -- requests sent less than this apart may arrive in either order (3)
  tenant             = ARGV[24],           -- tenant of the reservation ('' = none: K.tenants, K.tenant untouched)
  date               = ARGV[25],           -- budget day of the reservation, YYYY-MM-DD
  tenant_burst_ms    = tonumber(ARGV[26]), -- capacity of a tenant's buckets, as refill time
  sent_member        = ARGV[27],           -- the reservation's member of the sent set (id:chars:tokens:max_output)
  bad                = ARGV[28] == '1',    -- the caller refused an absurd accounting signal (4)
}
-- (1) 'settle': usage known; 'unknown': outcome unknown, keep the debit;
--     'refund': the provider did not charge, give it back; 'sync': a
--     stream just opened, apply its headers and keep the reservation in
--     flight for the settle that follows.
-- (2) Used only while no limit has been learned from a limit header.
-- (3) See "Header sync" below.
-- (4) Negative or impossibly large usage, counted in the calibration's
--     'bad'.
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

local now = script_now(A.now)
local mode = A.mode
local rc, tc, at = A.requests, A.tokens, A.at_ms

local removed = 0
if mode ~= 'sync' then
  removed = redis.call('ZREM', K.inflight, A.member)
end
-- Any settled outcome ends the cold-start probe of reserve.lua.
redis.call('HSET', K.limits, 'seen', 1)

local h = redis.call('HMGET', K.limits, 'rlim', 'rlvl', 'tlim', 'tlvl', 'ts', 'hat', 'rcapl', 'tcapl',
  'ramp_f', 'ramp_ts', 'ramp_g', 'ramp_iv')
-- The slow_down ramp fraction shapes the buckets exactly as in reserve.lua.
local ramp = ramp_fraction(h[9], h[10], h[11], h[12], now)
local ts = tonumber(h[5]) or now
local elapsed = now - ts
if elapsed < 0 then
  elapsed = 0
end
local burst = A.burst_ms
local cfg_r, cfg_t = A.rpm, A.tpm
local fields = {'ts', math.max(ts, now)}

-- Learn limits: a limit header always wins; an inferred limit only fills a gap.
local learned_r, learned_t = tonumber(h[1]) or 0, tonumber(h[3]) or 0
local new_r, new_t = learned_r, learned_t
if A.limit_requests > 0 then
  new_r = A.limit_requests
elseif learned_r <= 0 and A.inferred_requests > 0 then
  new_r = A.inferred_requests
end
if A.limit_tokens > 0 then
  new_t = A.limit_tokens
elseif learned_t <= 0 and A.inferred_tokens > 0 then
  new_t = A.inferred_tokens
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
local rrem, trem = A.remaining_requests, A.remaining_tokens
if new_r > 0 and rrem > new_r then rrem = -1 end
-- (Without a learned limit, remaining above the configured per-minute cap
-- is as impossible.)
local trem_bad = (new_t > 0 and trem > new_t) or (new_t <= 0 and cfg_t > 0 and trem > cfg_t)
if trem_bad then
  redis.call('HINCRBY', K.calib, 'bad', 1)
  trem = -1
end
if A.bad then
  redis.call('HINCRBY', K.calib, 'bad', 1)
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
capl_r = learn_cap(new_r, rrem, A.reset_requests_ms, cap_base(new_r, learned_r, old_capl_r))
capl_t = learn_cap(new_t, trem, A.reset_tokens_ms, cap_base(new_t, learned_t, old_capl_t))
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
  if redis.call('HINCRBY', K.day, field, n) < 0 then
    redis.call('HSET', K.day, field, 0)
  end
end

-- Reconcile the debit, once.
if removed == 1 then
  if mode == 'refund' then
    if rlvl then rlvl = rlvl + rc end
    if tlvl then tlvl = tlvl + tc end
    day_add('req', -rc)
    day_add('tok', -tc)
    redis.call('PEXPIRE', K.day, A.day_ttl_ms)
  elseif mode == 'settle' then
    -- Usage corrects the debit only when the provider gave no remaining
    -- figure: its limiter may count otherwise than its billing (OpenAI
    -- charges characters/4 at admission), and the header sync below puts
    -- the level where the provider's is.
    if tlvl and trem < 0 then tlvl = tlvl + tc - A.charged end
    local delta = A.total - tc
    if delta ~= 0 then
      day_add('tok', delta)
      redis.call('PEXPIRE', K.day, A.day_ttl_ms)
    end
    local est, act = A.estimated_input, A.input
    if est > 0 and act > 0 then
      redis.call('HINCRBY', K.stats, 'est_n', 1)
      redis.call('HINCRBYFLOAT', K.stats, 'est_abs', fmt(math.abs(est - act)))
      redis.call('HINCRBYFLOAT', K.stats, 'est_rel', fmt((est - act) / act))
    end
  end
end

-- The tenant's buckets, if it (still) has a budget, get the same
-- reconciliation as the account's: all back on refund, the input estimate's
-- error on settle. Headers say nothing about a tenant.
local tenant = A.tenant
if removed == 1 and tenant ~= '' and mode ~= 'unknown' then
  local tb = tenant_budget(redis.call('HGET', K.tenants, tenant))
  if tb then
    local th = redis.call('HMGET', K.tenant, 'rlvl', 'tlvl', 'ts', 'day', 'dreq')
    local tts = tonumber(th[3]) or now
    local tel = math.max(0, now - tts)
    local tf = {'ts', math.max(tts, now)}
    local back_r, back_t = 0, tc - A.charged
    if mode == 'refund' then
      back_r, back_t = rc, tc
      if th[4] == A.date then
        table.insert(tf, 'dreq')
        table.insert(tf, math.max(0, (tonumber(th[5]) or 0) - rc))
      end
    end
    if tb.rpm > 0 and th[1] then
      local cap = tb.rpm * A.tenant_burst_ms / 60000
      table.insert(tf, 'rlvl')
      table.insert(tf, fmt(math.min(cap, refill(tonumber(th[1]), cap, tb.rpm / 60000, tel) + back_r)))
    end
    if tb.tpm > 0 and th[2] then
      local cap = tb.tpm * A.tenant_burst_ms / 60000
      table.insert(tf, 'tlvl')
      table.insert(tf, fmt(math.min(cap, refill(tonumber(th[2]), cap, tb.tpm / 60000, tel) + back_t)))
    end
    redis.call('HSET', K.tenant, unpack(tf))
  end
end

-- The sent set keeps what the provider charged: a refused request leaves it.
if mode == 'refund' then
  redis.call('ZREM', K.sent, A.sent_member)
end

-- Calibrate the cost estimate (calib.lua) from the provider's remaining
-- tokens, or, from a provider that sends none, from usage.
if trem >= 0 and new_t > 0 then
  local cap = new_t
  if capl_t > 0 and capl_t < cap then cap = capl_t end
  cal_observe(K.calib, K.sent, A.sent_member, at, trem, new_t, cap, A.reorder_window_ms, now, mode ~= 'refund')
elseif mode == 'settle' and not trem_bad and trem < 0 then
  redis.call('HINCRBY', K.calib, 'missing', 1)
  local c, t = string.match(A.sent_member, ':(%d+):(%d+):%d+$')
  if c and A.input > 0 then
    cal_usage(K.calib, A.input, tonumber(c), tonumber(t))
  end
end

-- Sync to the provider's remaining figures, if this response is fresh
-- (see "Header sync" above).
local win = A.reorder_window_ms
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
  for _, m in ipairs(redis.call('ZRANGE', K.inflight, 0, -1)) do
    local _, mr, mt, mat = string.match(m, '^([^:]*):(%d+):(%d+):(%d+)$')
    mat = tonumber(mat)
    if m == A.member then
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
redis.call('HSET', K.limits, unpack(fields))
return removed
