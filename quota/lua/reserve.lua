-- reserve.lua: admit one request against an account's pause record, daily
-- budget and rate buckets (see bucket.lua, prepended by Go), in that order,
-- and then against its tenant's budget, if the request names a tenant that
-- has one; last, weighted fair sharing decides whether the request may take
-- a scheduled turn ahead of other tenants with pending work.
--
-- KEYS[1] limits hash    promptq:{acct}:limits (fields: see bucket.lua)
-- KEYS[2] inflight zset  promptq:{acct}:inflight (member id:requests:tokens:at_ms, score expiry ms)
-- KEYS[3] day hash       promptq:{acct}:day:<date> (fields req, tok)
-- KEYS[4] pause hash     promptq:{acct}:pause (read only; field until = ms epoch, 0 = indefinite)
-- KEYS[5] tenants hash   promptq:{acct}:tenants (read only; tenant -> budget JSON)
-- KEYS[6] tenant hash    promptq:{acct}:tenant:<tenant> (levels; see bucket.lua)
-- KEYS[7] fair pending  promptq:{acct}:fair:seen (tenant -> ms until which it has pending work)
-- KEYS[8] fair vt zset   promptq:{acct}:fair:vt (tenant -> virtual time)
-- KEYS[9] calib hash     promptq:{acct}:calib (read only; see calib.lua)
-- KEYS[10] sent zset     promptq:{acct}:sent (member id:chars:tokens:max_output, score send ms)
-- KEYS[11] model pauses  promptq:{acct}:pause:models (read only; model -> until ms, 0 = indefinite)
--
-- ARGV[1]  '' (now from Redis TIME) or, in tests only, now in ms epoch
-- ARGV[2]  request cost
-- ARGV[3]  token cost
-- ARGV[4]  configured requests per minute (0 = none)
-- ARGV[5]  configured tokens per minute (0 = none)
-- ARGV[6]  burst ms: capacity of a configured bucket, as refill time
-- ARGV[7]  daily request stop: admit while used+cost <= stop (0 = no budget)
-- ARGV[8]  daily token stop (0 = no budget)
-- ARGV[9]  reservation TTL ms
-- ARGV[10] inflight member prefix for this reservation (id:requests); the
--          script appends ':', the token cost, ':' and the send time
--          (now + wait) in ms, since
--          the header sync in settle.lua orders requests by when they reach
--          the provider, not by when they were reserved
-- ARGV[11] day hash TTL ms
-- ARGV[12] probe: while no limit is known and no response has been settled
--          yet (limits field 'seen' absent), at most this many reservations
--          may be in flight (0 = no probe), so a cold start does not burst
--          past limits nobody has learned yet
-- ARGV[13] schedule ms: a cost that fits within this many ms is admitted now
--          on schedule (levels go negative, refill pays the debt) and the
--          caller waits the returned ms before sending; 0 = no scheduling
-- ARGV[14] tenant name ('' = none: KEYS[5] and KEYS[6] are not touched)
-- ARGV[15] today's date, YYYY-MM-DD (the tenant's daily request count)
-- ARGV[16] ms until the next budget day starts
-- ARGV[17] tenant burst ms: capacity of a tenant's buckets, as refill time
-- ARGV[18] fair grace ms: a tenant has pending work while it has a request
--          waiting for a scheduled turn or asking again after a refusal,
--          and this long after (0 = no fair sharing: KEYS[7] and KEYS[8]
--          are not touched)
-- ARGV[19] fair slack ms: how far (in ms of account capacity, divided by
--          weight) a tenant may run ahead of another with pending work
--          before it yields its scheduled turns
-- ARGV[20] fair max lag ms: how far behind the others a tenant with pending
--          work may fall (credit it can bank while it uses little)
-- ARGV[21] fair retry ms: the shortest wait a fair-share refusal returns, so
--          the workers of a tenant that yields do not all ask again the
--          moment the next unit of headroom is due
-- ARGV[22] input on the chars basis (calib.lua); -1 = the token cost is
--          ARGV[3] as given, with ARGV[23] as its input estimate
-- ARGV[23] input on the tokens basis (0 = no tokenizer); with ARGV[22] -1,
--          the input estimate contained in ARGV[3]
-- ARGV[24] max output tokens: with ARGV[22] >= 0 the token cost is the
--          calibrated input estimate plus this
-- ARGV[25] '1' = peek: answer what the account could do for this cost
--          without admitting it (code 5, or 1-4, 6 as below); nothing is
--          written but the expiry of lapsed in-flight reservations
-- ARGV[26] the request's model ('' = any): an account paused for this model
--          alone (KEYS[11]) refuses it with code 6
--
-- Returns {code, n} (code 1: {1, n, reason}):
--   {0, wait_ms, tokens, input}  admitted: buckets and daily counters
--                 debited, member added; send after wait_ms (0 = now; > 0
--                 only with scheduling); tokens is the token cost debited,
--                 input the input estimate in it
--   {1, wait_ms, r} the cost does not fit yet; it will after wait_ms (ceil).
--                 r = 1 when the tenant's budget is what holds it back,
--                 2 when fair sharing is (another tenant with pending work
--                 is behind: ask again after wait_ms, at least fair retry
--                 ms), 3 when the cold-start probe is (ARGV[12]: a probe
--                 is in flight and no response has been settled yet), else 0
--   {2, until_ms} a pause record is active (until_ms 0 = indefinite)
--   {3, which}    the daily stop is reached (1 = requests, 2 = tokens)
--   {4, which}    the cost exceeds the bucket capacity and can never fit (1 = requests, 2 = tokens)
--   {5, wait_ms, tokens, requests_left, tokens_left}  peek only: the cost
--                 would fit after wait_ms; *_left are the buckets' levels
--                 now, in thousandths of their capacity (1000 = full or no
--                 limit known; negative = in debt to scheduled turns)
--   {6, until_ms} the account is paused for the request's model (ARGV[26])
--
-- During a slow_down ramp (bucket.lua) the buckets are shaped by ramp_shape.
-- A cost that exceeds the ramped capacity but not the full one is admitted
-- once the bucket is full (the level goes into debt), rather than never.

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
local rc, tc = tonumber(ARGV[2]), tonumber(ARGV[3])
-- The token cost: the calibrated estimate of the input plus the output
-- allowance, unless the caller gave the cost itself.
local in_c, in_t, in_o = tonumber(ARGV[22]), tonumber(ARGV[23]), tonumber(ARGV[24])
local est_in, least_in = in_t, in_t
if in_c >= 0 then
  est_in, least_in = cal_estimate(KEYS[9], in_c, in_t)
  tc = est_in + in_o
else
  in_c, in_o = in_t, math.max(0, tc - in_t)
end

-- 1. pause record.
if redis.call('EXISTS', KEYS[4]) == 1 then
  local u = tonumber(redis.call('HGET', KEYS[4], 'until')) or 0
  if u == 0 or u > now then
    return {2, u}
  end
end

-- 1b. a pause of this model alone (an account that answered model_not_found).
if ARGV[26] ~= '' then
  local mu = redis.call('HGET', KEYS[11], ARGV[26])
  if mu then
    mu = tonumber(mu) or 0
    if mu == 0 or mu > now then
      return {6, mu}
    end
  end
end

-- 2. daily budget (counters include reservations still in flight).
local dreq, dtok = tonumber(ARGV[7]), tonumber(ARGV[8])
if dreq > 0 or dtok > 0 then
  local used = redis.call('HMGET', KEYS[3], 'req', 'tok')
  if dreq > 0 and (tonumber(used[1]) or 0) + rc > dreq then
    return {3, 1}
  end
  if dtok > 0 and (tonumber(used[2]) or 0) + tc > dtok then
    return {3, 2}
  end
end

-- 3. rate buckets. Expired reservations leave the in-flight set; their debit
-- stays, since nobody knows whether the provider charged them.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)

local h = redis.call('HMGET', KEYS[1], 'rlim', 'rlvl', 'tlim', 'tlvl', 'ts', 'rcapl', 'tcapl',
  'ramp_f', 'ramp_ts', 'ramp_g', 'ramp_iv')
local ts = tonumber(h[5]) or now
local elapsed = now - ts
if elapsed < 0 then
  elapsed = 0 -- another host's clock ran ahead; wait for ours to catch up
end
local burst = tonumber(ARGV[6])
local ramp = ramp_fraction(h[8], h[9], h[10], h[11], now)
local rl, rcap, rrate = ramp_shape(tonumber(h[1]) or 0, tonumber(ARGV[4]), burst, tonumber(h[6]), ramp)
local tl, tcap, trate = ramp_shape(tonumber(h[3]) or 0, tonumber(ARGV[5]), burst, tonumber(h[7]), ramp)
local _, rfull = shape(tonumber(h[1]) or 0, tonumber(ARGV[4]), burst, tonumber(h[6]))
local _, tfull = shape(tonumber(h[3]) or 0, tonumber(ARGV[5]), burst, tonumber(h[7]))

if rl > 0 and rc > rfull then
  return {4, 1}
end
-- Too large only if even the least the provider may charge is: before the
-- calibration knows the provider's formula, a CJK prompt's tokenizer count
-- may be four times what a characters/4 limiter charges. A larger cost is
-- admitted once the bucket is full (need is capped to the capacity below).
if tl > 0 and least_in + tc - est_in > tfull then
  return {4, 2}
end

local probe = tonumber(ARGV[12])
if rl <= 0 and tl <= 0 and probe > 0 and redis.call('HEXISTS', KEYS[1], 'seen') == 0 then
  if redis.call('ZCARD', KEYS[2]) >= probe then
    return {1, 50, 3}
  end
end

local wait = 0
local rlvl, tlvl
if rl > 0 then
  rlvl = refill(tonumber(h[2]), rcap, rrate, elapsed)
  local need = math.min(rc, rcap)
  if need > rlvl then
    wait = math.max(wait, math.ceil((need - rlvl) / rrate))
  end
end
if tl > 0 then
  tlvl = refill(tonumber(h[4]), tcap, trate, elapsed)
  local need = math.min(tc, tcap)
  if need > tlvl then
    wait = math.max(wait, math.ceil((need - tlvl) / trate))
  end
end

-- 4. the tenant's budget: its buckets may hold the request back too, so one
-- producer cannot take the whole account. A tenant without a budget shares
-- the account's headroom freely.
local tenant = ARGV[14]
local tburst = tonumber(ARGV[17])
local tb, th, tts, t_rlvl, t_tlvl, t_wait
if tenant ~= '' then
  tb = tenant_budget(redis.call('HGET', KEYS[5], tenant))
end
t_wait = 0
if tb then
  th = redis.call('HMGET', KEYS[6], 'rlvl', 'tlvl', 'ts', 'day', 'dreq')
  if tb.rpd > 0 and th[4] == ARGV[15] and (tonumber(th[5]) or 0) + rc > tb.rpd then
    return {1, tonumber(ARGV[16]), 1}
  end
  tts = tonumber(th[3]) or now
  local tel = math.max(0, now - tts)
  if tb.rpm > 0 then
    local cap, rate = tb.rpm * tburst / 60000, tb.rpm / 60000
    t_rlvl = refill(tonumber(th[1]), cap, rate, tel)
    local need = math.min(rc, cap)
    if need > t_rlvl + 1e-6 then -- levels are stored with 6 decimals
      t_wait = math.max(t_wait, math.ceil((need - t_rlvl) / rate))
    end
  end
  if tb.tpm > 0 then
    local cap, rate = tb.tpm * tburst / 60000, tb.tpm / 60000
    t_tlvl = refill(tonumber(th[2]), cap, rate, tel)
    local need = math.min(tc, cap)
    if need > t_tlvl + 1e-6 then
      t_wait = math.max(t_wait, math.ceil((need - t_tlvl) / rate))
    end
  end
  if t_wait > wait then
    wait = t_wait
  end
end

if ARGV[25] == '1' then
  local rf, tf = 1000, 1000
  if rl > 0 and rcap > 0 then
    rf = math.floor(1000 * rlvl / rcap)
  end
  if tl > 0 and tcap > 0 then
    tf = math.floor(1000 * tlvl / tcap)
  end
  return {5, wait, tc, rf, tf}
end

-- fair_enter drops the tenants whose pending work has ended (from both fair
-- sets: one that returns starts level with the others) and returns the
-- request's tenant's virtual time, the lowest virtual time among the other
-- tenants with pending work (nil when none) and until when the request's
-- tenant already counts as pending (nil when it does not). The virtual time
-- is clamped so that no tenant banks credit: one that was not pending starts
-- level with the others, one that was falls at most lag_ms behind.
local function fair_enter(lag_ms)
  local tenant = ARGV[14]
  local gone = redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', '(' .. now)
  if #gone > 0 then
    redis.call('ZREM', KEYS[7], unpack(gone))
    redis.call('ZREM', KEYS[8], unpack(gone))
  end
  local pending = tonumber(redis.call('ZSCORE', KEYS[7], tenant))
  local vmin
  for _, o in ipairs(redis.call('ZRANGE', KEYS[7], 0, -1)) do
    if o ~= tenant then
      local v = tonumber(redis.call('ZSCORE', KEYS[8], o))
      if v and (not vmin or v < vmin) then
        vmin = v
      end
    end
  end
  local vt = tonumber(redis.call('ZSCORE', KEYS[8], tenant))
  if vmin then
    local floor = vmin
    if pending then
      floor = vmin - lag_ms
    end
    if not vt or vt < floor then
      vt = floor
    end
  end
  return vt or 0, vmin, pending
end

-- fair_mark records that the request's tenant has pending work until ms
-- (never shortening what it had) and its virtual time vt.
local function fair_mark(pending, until_ms, vt)
  local tenant = ARGV[14]
  if not pending or until_ms > pending then
    redis.call('ZADD', KEYS[7], until_ms, tenant)
  end
  redis.call('ZADD', KEYS[8], fmt(vt), tenant)
  redis.call('PEXPIRE', KEYS[7], ARGV[11])
  redis.call('PEXPIRE', KEYS[8], ARGV[11])
end

-- 5. weighted fair sharing between the tenants with pending work (start-time
-- fair queueing on virtual time). Requests without a tenant count as the
-- tenant ''. A tenant's virtual time grows, per admitted request, by the
-- request's cost in ms of the account's capacity (its larger share of the
-- request and the token rate) divided by the tenant's weight. A tenant has
-- pending work while a request of its waits for a scheduled turn or asks
-- again after a refusal, and fair grace ms after, unless its own budget is
-- what holds it back. When the account has headroom now (wait 0) every
-- tenant is admitted, so no capacity idles; when the request would take a
-- scheduled turn (wait > 0), a tenant more than the slack ahead of another
-- tenant with pending work yields: it is refused (reason 2) and asks again
-- later, leaving the turns to those behind it. Fair sharing only decides
-- scheduled turns, so it is off without scheduling (ARGV[13] 0), and when
-- fair grace ms is 0.
local budget_bound = tb and tb.capped and t_wait > 0 and t_wait >= wait
local fair_grace, fair_slack, fair_lag = tonumber(ARGV[18]), tonumber(ARGV[19]), tonumber(ARGV[20])
local fair = fair_grace > 0 and tonumber(ARGV[13]) > 0 and not budget_bound
if wait > tonumber(ARGV[13]) then
  if fair then
    local vt, _, pending = fair_enter(fair_lag)
    fair_mark(pending, now + wait + fair_grace, vt)
  end
  if budget_bound then
    return {1, wait, 1}
  end
  return {1, wait, 0}
end
if fair then
  local vt, vmin, pending = fair_enter(fair_lag)
  if wait > 0 and vmin and vt - vmin > fair_slack then
    local retry = math.max(wait, tonumber(ARGV[21]))
    fair_mark(pending, now + retry + fair_grace, vt)
    return {1, retry, 2}
  end
  local cost_ms = 0
  if rl > 0 then
    cost_ms = math.max(cost_ms, rc / rrate)
  end
  if tl > 0 then
    cost_ms = math.max(cost_ms, tc / trate)
  end
  if cost_ms <= 0 then
    cost_ms = rc -- no limit known: count requests
  end
  local weight = 1
  if tb then
    weight = tb.weight
  end
  fair_mark(pending, now + wait + fair_grace, vt + cost_ms / weight)
end

local fields = {'ts', math.max(ts, now)}
if rl > 0 then
  table.insert(fields, 'rlvl')
  table.insert(fields, fmt(rlvl - rc))
end
if tl > 0 then
  table.insert(fields, 'tlvl')
  table.insert(fields, fmt(tlvl - tc))
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('ZADD', KEYS[2], now + wait + tonumber(ARGV[9]), ARGV[10] .. ':' .. tc .. ':' .. (now + wait))
-- The sent log that calibration matches against remaining figures
-- (calib.lua): the id (ARGV[10] up to its ':'), the input bases, the output allowance.
local id = string.match(ARGV[10], '^([^:]*)')
redis.call('ZREMRANGEBYSCORE', KEYS[10], '-inf', now - CAL_KEEP)
redis.call('ZADD', KEYS[10], now + wait, id .. ':' .. in_c .. ':' .. math.max(in_t, 0) .. ':' .. in_o)
redis.call('PEXPIRE', KEYS[10], CAL_KEEP + tonumber(ARGV[9]))
redis.call('HINCRBY', KEYS[3], 'req', rc)
redis.call('HINCRBY', KEYS[3], 'tok', tc)
redis.call('PEXPIRE', KEYS[3], ARGV[11])
if tb then
  local tf = {'ts', math.max(tts, now)}
  if t_rlvl then
    table.insert(tf, 'rlvl')
    table.insert(tf, fmt(t_rlvl - rc))
  end
  if t_tlvl then
    table.insert(tf, 'tlvl')
    table.insert(tf, fmt(t_tlvl - tc))
  end
  if th[4] == ARGV[15] then
    table.insert(tf, 'dreq')
    table.insert(tf, (tonumber(th[5]) or 0) + rc)
  else
    table.insert(tf, 'day')
    table.insert(tf, ARGV[15])
    table.insert(tf, 'dreq')
    table.insert(tf, rc)
  end
  redis.call('HSET', KEYS[6], unpack(tf))
  redis.call('PEXPIRE', KEYS[6], ARGV[11])
end
return {0, wait, tc, est_in, now}
