-- reserve/fair.lua: weighted fair sharing between the tenants with pending
-- work (start-time fair queueing on virtual time). Requests without a tenant
-- count as the tenant ''. A tenant's virtual time grows, per admitted
-- request, by the request's cost in ms of the account's capacity (its larger
-- share of the request and the token rate) divided by the tenant's weight.
-- A tenant has pending work while a request of its waits for a scheduled
-- turn or asks again after a refusal, and fair grace ms after, unless its
-- own budget is what holds it back. When the account has headroom now (wait
-- 0) every tenant is admitted, so no capacity idles; when the request would
-- take a scheduled turn (wait > 0), a tenant more than the slack ahead of
-- another tenant with pending work yields: it is refused (WHY_FAIR) and
-- asks again later, leaving the turns to those behind it. Fair sharing only
-- decides scheduled turns, so it is off without scheduling, and when fair
-- grace ms is 0.

-- fair_enter drops the tenants whose pending work has ended (from both fair
-- sets: one that returns starts level with the others) and returns the
-- request's tenant's virtual time, the lowest virtual time among the other
-- tenants with pending work (nil when none) and until when the request's
-- tenant already counts as pending (nil when it does not). The virtual time
-- is clamped so that no tenant banks credit: one that was not pending starts
-- level with the others, one that was falls at most lag_ms behind.
local function fair_enter(K, tenant, now, lag_ms)
  local gone = redis.call('ZRANGEBYSCORE', K.fair_seen, '-inf', '(' .. now)
  if #gone > 0 then
    redis.call('ZREM', K.fair_seen, unpack(gone))
    redis.call('ZREM', K.fair_vt, unpack(gone))
  end
  local pending = tonumber(redis.call('ZSCORE', K.fair_seen, tenant))
  local vmin
  for _, o in ipairs(redis.call('ZRANGE', K.fair_seen, 0, -1)) do
    if o ~= tenant then
      local v = tonumber(redis.call('ZSCORE', K.fair_vt, o))
      if v and (not vmin or v < vmin) then
        vmin = v
      end
    end
  end
  local vt = tonumber(redis.call('ZSCORE', K.fair_vt, tenant))
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

-- fair_mark records that tenant has pending work until until_ms (never
-- shortening what it had) and its virtual time vt.
local function fair_mark(K, tenant, pending, until_ms, vt, ttl_ms)
  if not pending or until_ms > pending then
    redis.call('ZADD', K.fair_seen, until_ms, tenant)
  end
  redis.call('ZADD', K.fair_vt, fmt(vt), tenant)
  redis.call('PEXPIRE', K.fair_seen, ttl_ms)
  redis.call('PEXPIRE', K.fair_vt, ttl_ms)
end

-- fair_waiting records that the request's tenant has pending work: a
-- request of its waits wait ms for headroom beyond any scheduled turn.
local function fair_waiting(K, A, now, wait)
  local vt, _, pending = fair_enter(K, A.tenant, now, A.fair_max_lag_ms)
  fair_mark(K, A.tenant, pending, now + wait + A.fair_grace_ms, vt, A.day_ttl_ms)
end

-- fair_turn decides whether the request may take its turn, wait ms away
-- (0 = now), at cost_ms of the account's capacity for a tenant of weight:
-- nil when it may (its virtual time advances), else {WAIT, retry_ms,
-- WHY_FAIR} (the tenant is more than the slack ahead of another with
-- pending work; ask again no sooner than fair retry ms).
local function fair_turn(K, A, now, wait, cost_ms, weight)
  local vt, vmin, pending = fair_enter(K, A.tenant, now, A.fair_max_lag_ms)
  if wait > 0 and vmin and vt - vmin > A.fair_slack_ms then
    local retry = math.max(wait, A.fair_retry_ms)
    fair_mark(K, A.tenant, pending, now + retry + A.fair_grace_ms, vt, A.day_ttl_ms)
    return {WAIT, retry, WHY_FAIR}
  end
  fair_mark(K, A.tenant, pending, now + wait + A.fair_grace_ms, vt + cost_ms / weight, A.day_ttl_ms)
  return nil
end

-- fair_cost_ms is what rc requests and tc tokens cost in ms of the account's
-- capacity (buckets b): the larger of the two rates' shares; rc when no
-- limit is known.
local function fair_cost_ms(b, rc, tc)
  local cost_ms = 0
  if b.rl > 0 then
    cost_ms = math.max(cost_ms, rc / b.rrate)
  end
  if b.tl > 0 then
    cost_ms = math.max(cost_ms, tc / b.trate)
  end
  if cost_ms <= 0 then
    cost_ms = rc -- no limit known: count requests
  end
  return cost_ms
end
