-- reserve.lua: admit one request against an account's pause record, daily
-- budget and rate buckets, in that order, and then against its tenant's
-- budget, if the request names a tenant that has one; last, weighted fair
-- sharing decides whether the request may take a scheduled turn ahead of
-- other tenants with pending work.
--
-- Go composes the script that runs from named parts (quota/scripts.go):
-- now.lua, bucket.lua, calib.lua, then reserve/codes.lua, pause.lua,
-- daily.lua, buckets.lua, tenant.lua and fair.lua, then this file, which
-- runs them in order. It is one script, so a reservation is one round trip.

local K = {
  limits       = KEYS[1],  -- hash promptq:{acct}:limits (fields: see bucket.lua)
  inflight     = KEYS[2],  -- zset promptq:{acct}:inflight (member id:requests:tokens:at_ms, score expiry ms)
  day          = KEYS[3],  -- hash promptq:{acct}:day:<date> (fields req, tok)
  pause        = KEYS[4],  -- hash promptq:{acct}:pause (read only; field until = ms epoch, 0 = indefinite)
  tenants      = KEYS[5],  -- hash promptq:{acct}:tenants (read only; tenant -> budget JSON)
  tenant       = KEYS[6],  -- hash promptq:{acct}:tenant:<tenant> (levels; see bucket.lua)
  fair_seen    = KEYS[7],  -- zset promptq:{acct}:fair:seen (tenant -> ms until which it has pending work)
  fair_vt      = KEYS[8],  -- zset promptq:{acct}:fair:vt (tenant -> virtual time)
  calib        = KEYS[9],  -- hash promptq:{acct}:calib (read only; see calib.lua)
  sent         = KEYS[10], -- zset promptq:{acct}:sent (member id:chars:tokens:max_output, score send ms)
  pause_models = KEYS[11], -- hash promptq:{acct}:pause:models (read only; model -> until ms, 0 = indefinite)
}

local A = {
  now                 = ARGV[1],            -- '' (now from Redis TIME) or, in tests only, now in ms epoch
  requests            = tonumber(ARGV[2]),  -- request cost
  tokens              = tonumber(ARGV[3]),  -- token cost (with in_chars -1)
  rpm                 = tonumber(ARGV[4]),  -- configured requests per minute (0 = none)
  tpm                 = tonumber(ARGV[5]),  -- configured tokens per minute (0 = none)
  burst_ms            = tonumber(ARGV[6]),  -- capacity of a configured bucket, as refill time
  daily_stop_requests = tonumber(ARGV[7]),  -- admit while used+cost <= stop (0 = no budget)
  daily_stop_tokens   = tonumber(ARGV[8]),  -- likewise for tokens (0 = no budget)
  ttl_ms              = tonumber(ARGV[9]),  -- reservation TTL
  member_prefix       = ARGV[10],           -- in-flight member prefix of this reservation, id:requests (1)
  day_ttl_ms          = ARGV[11],           -- TTL of the day hash and other daily state
  probe               = tonumber(ARGV[12]), -- cold-start probe: reservations in flight at most (2)
  schedule_ms         = tonumber(ARGV[13]), -- admit on schedule a cost that fits within this (3)
  tenant              = ARGV[14],           -- tenant name ('' = none: K.tenants, K.tenant untouched)
  date                = ARGV[15],           -- today's date, YYYY-MM-DD (the tenant's daily request count)
  until_next_day_ms   = tonumber(ARGV[16]), -- ms until the next budget day starts
  tenant_burst_ms     = tonumber(ARGV[17]), -- capacity of a tenant's buckets, as refill time
  fair_grace_ms       = tonumber(ARGV[18]), -- pending work lasts this long after a wait (4)
  fair_slack_ms       = tonumber(ARGV[19]), -- how far a tenant may run ahead before it yields (5)
  fair_max_lag_ms     = tonumber(ARGV[20]), -- how far behind a tenant with pending work may fall (6)
  fair_retry_ms       = tonumber(ARGV[21]), -- the shortest wait of a WHY_FAIR refusal (7)
  in_chars            = tonumber(ARGV[22]), -- input on the chars basis (calib.lua); -1 = tokens as given (8)
  in_tokens           = tonumber(ARGV[23]), -- input on the tokens basis (0 = no tokenizer) (8)
  max_output          = tonumber(ARGV[24]), -- max output tokens (8)
  peek                = ARGV[25] == '1',    -- '1' = peek: answer without admitting (9)
  model               = ARGV[26],           -- the request's model ('' = any) (10)
}
-- (1) The script appends ':', the token cost, ':' and the send time (now +
--     wait) in ms, since the header sync in settle/sync.lua orders requests
--     by when they reach the provider, not by when they were reserved.
-- (2) While no limit is known and no response has been settled yet (limits
--     field 'seen' absent), at most this many reservations may be in
--     flight (0 = no probe), so a cold start does not burst past limits
--     nobody has learned yet.
-- (3) A cost that fits within this many ms is admitted now on schedule
--     (levels go negative, refill pays the debt) and the caller waits the
--     returned ms before sending; 0 = no scheduling.
-- (4) A tenant has pending work while it has a request waiting for a
--     scheduled turn or asking again after a refusal, and this long after
--     (0 = no fair sharing: K.fair_seen and K.fair_vt are not touched).
-- (5) In ms of account capacity, divided by weight: how far a tenant may
--     run ahead of another with pending work before it yields its
--     scheduled turns.
-- (6) The credit a tenant with pending work can bank while it uses little.
-- (7) So the workers of a tenant that yields do not all ask again the
--     moment the next unit of headroom is due.
-- (8) With in_chars >= 0 the token cost is the calibrated input estimate
--     plus max_output. With in_chars -1 it is tokens as given, and
--     in_tokens is the input estimate contained in it.
-- (9) Answers what the account could do for this cost without admitting it
--     (PEEK, or WAIT, PAUSED, DAILY, TOO_LARGE, MODEL_PAUSED); nothing is
--     written but the expiry of lapsed in-flight reservations.
-- (10) An account paused for this model alone (K.pause_models) refuses it
--     with MODEL_PAUSED.
--
-- Returns (codes: reserve/codes.lua):
--   {ADMITTED, wait_ms, tokens, input, now}  buckets and daily counters
--                 debited, member added; send after wait_ms (0 = now; > 0
--                 only with scheduling); tokens is the token cost debited,
--                 input the input estimate in it, now the script's clock
--   {WAIT, wait_ms, why}  the cost does not fit yet; it will after wait_ms
--                 (ceil). why: WHY_TENANT when the tenant's budget is what
--                 holds it back, WHY_FAIR when fair sharing is (ask again
--                 after wait_ms, at least fair retry ms), WHY_PROBE when the
--                 cold-start probe is, else WHY_ACCOUNT
--   {PAUSED, until_ms}       a pause record is active (until_ms 0 = indefinite)
--   {DAILY, which}           the daily stop is reached (REQUESTS or TOKENS)
--   {TOO_LARGE, which}       the cost exceeds the bucket capacity and can never fit
--   {PEEK, wait_ms, tokens, requests_left, tokens_left}  peek only: the cost
--                 would fit after wait_ms; *_left are the buckets' levels
--                 now, in thousandths of their capacity (1000 = full or no
--                 limit known; negative = in debt to scheduled turns)
--   {MODEL_PAUSED, until_ms} the account is paused for the request's model

-- reserve_cost returns the cost c = {rc, tc, est_in, least_in, in_c, in_t,
-- in_o}: the token cost tc is the calibrated estimate of the input plus
-- the output allowance, unless the caller gave the cost itself.
local function reserve_cost()
  local c = {rc = A.requests, tc = A.tokens, in_c = A.in_chars, in_t = A.in_tokens, in_o = A.max_output}
  c.est_in, c.least_in = c.in_t, c.in_t
  if c.in_c >= 0 then
    c.est_in, c.least_in = cal_estimate(K.calib, c.in_c, c.in_t)
    c.tc = c.est_in + c.in_o
  else
    c.in_c, c.in_o = c.in_t, math.max(0, c.tc - c.in_t)
  end
  return c
end

-- reserve_log adds the reservation, sent at now + wait, to the in-flight
-- set and to the sent log that calibration matches against remaining
-- figures (calib.lua): the id, the input bases, the output allowance.
local function reserve_log(now, wait, c)
  redis.call('ZADD', K.inflight, now + wait + A.ttl_ms, A.member_prefix .. ':' .. c.tc .. ':' .. (now + wait))
  local id = string.match(A.member_prefix, '^([^:]*)')
  redis.call('ZREMRANGEBYSCORE', K.sent, '-inf', now - CAL_KEEP)
  redis.call('ZADD', K.sent, now + wait, id .. ':' .. c.in_c .. ':' .. math.max(c.in_t, 0) .. ':' .. c.in_o)
  redis.call('PEXPIRE', K.sent, CAL_KEEP + A.ttl_ms)
end

local now = script_now(A.now)
local c = reserve_cost()

local reply = pause_reply(K.pause, K.pause_models, A.model, now)
  or daily_reply(K.day, A.daily_stop_requests, A.daily_stop_tokens, c.rc, c.tc)
if reply then
  return reply
end
local b, t
b, reply = buckets_read(K, A, now, c)
if not b then
  return reply
end
t, reply = tenant_read(K, A, now, c.rc, c.tc)
if reply then
  return reply
end
local wait = b.wait
if t and t.wait > wait then
  wait = t.wait
end

if A.peek then
  local rf, tf = buckets_left(b)
  return {PEEK, wait, c.tc, rf, tf}
end

-- A request its tenant's own budget holds back does not count as the
-- tenant's pending work in fair sharing.
local budget_bound = t and t.tb.capped and t.wait > 0 and t.wait >= wait
local fair = A.fair_grace_ms > 0 and A.schedule_ms > 0 and not budget_bound
if wait > A.schedule_ms then
  if fair then
    fair_waiting(K, A, now, wait)
  end
  if budget_bound then
    return {WAIT, wait, WHY_TENANT}
  end
  return {WAIT, wait, WHY_ACCOUNT}
end
if fair then
  reply = fair_turn(K, A, now, wait, fair_cost_ms(b, c.rc, c.tc), t and t.tb.weight or 1)
  if reply then
    return reply
  end
end

buckets_debit(K.limits, b, now, c.rc, c.tc)
reserve_log(now, wait, c)
daily_debit(K.day, c.rc, c.tc, A.day_ttl_ms)
if t then
  tenant_debit(K.tenant, t, now, c.rc, c.tc, A.date, A.day_ttl_ms)
end
return {ADMITTED, wait, c.tc, c.est_in, now}
