-- settle/debit.lua: reconcile a reservation's debit, once, when it was
-- still in flight: the account's levels and daily counters, and its
-- tenant's buckets.

-- A daily counter never goes below zero, whatever a refund or a usage
-- figure asks (a counter driven negative would admit past the budget).
local function day_add(day_key, field, n)
  if redis.call('HINCRBY', day_key, field, n) < 0 then
    redis.call('HSET', day_key, field, 0)
  end
end

-- settle_debit gives the debit back on refund; on settle it corrects the
-- token level (without a remaining figure) and the daily tokens, and
-- samples the input estimate's error.
local function settle_debit(K, A, s)
  local rc, tc = A.requests, A.tokens
  if A.mode == 'refund' then
    if s.rlvl then s.rlvl = s.rlvl + rc end
    if s.tlvl then s.tlvl = s.tlvl + tc end
    day_add(K.day, 'req', -rc)
    day_add(K.day, 'tok', -tc)
    redis.call('PEXPIRE', K.day, A.day_ttl_ms)
  elseif A.mode == 'settle' then
    -- Usage corrects the debit only when the provider gave no remaining
    -- figure: its limiter may count otherwise than its billing (OpenAI
    -- charges characters/4 at admission), and the header sync puts the
    -- level where the provider's is.
    if s.tlvl and s.trem < 0 then s.tlvl = s.tlvl + tc - A.charged end
    local delta = A.total - tc
    if delta ~= 0 then
      day_add(K.day, 'tok', delta)
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

-- settle_tenant: the tenant's buckets, if it (still) has a budget, get the
-- same reconciliation as the account's: all back on refund, the input
-- estimate's error on settle. Headers say nothing about a tenant.
local function settle_tenant(K, A, now)
  local tb = tenant_budget(redis.call('HGET', K.tenants, A.tenant))
  if not tb then
    return
  end
  local rc, tc = A.requests, A.tokens
  local th = redis.call('HMGET', K.tenant, 'rlvl', 'tlvl', 'ts', 'day', 'dreq')
  local tts = tonumber(th[3]) or now
  local tel = math.max(0, now - tts)
  local tf = {'ts', math.max(tts, now)}
  local back_r, back_t = 0, tc - A.charged
  if A.mode == 'refund' then
    back_r, back_t = rc, tc
    if th[4] == A.date then
      settle_set(tf, 'dreq', math.max(0, (tonumber(th[5]) or 0) - rc))
    end
  end
  if tb.rpm > 0 and th[1] then
    local cap = tb.rpm * A.tenant_burst_ms / 60000
    settle_set(tf, 'rlvl', fmt(math.min(cap, refill(tonumber(th[1]), cap, tb.rpm / 60000, tel) + back_r)))
  end
  if tb.tpm > 0 and th[2] then
    local cap = tb.tpm * A.tenant_burst_ms / 60000
    settle_set(tf, 'tlvl', fmt(math.min(cap, refill(tonumber(th[2]), cap, tb.tpm / 60000, tel) + back_t)))
  end
  redis.call('HSET', K.tenant, unpack(tf))
end
