-- tenant_state.lua: read an account's tenant budgets and, for the tenants
-- named, their state with their levels refilled to now, in one consistent
-- view. Read only. Go prepends bucket.lua: the levels are computed by the
-- same tenant_budget and refill as reserve/tenant.lua uses.
--
-- KEYS[1]    tenants hash  promptq:{acct}:tenants
-- KEYS[2..n] tenant hashes promptq:{acct}:tenant:<tenant>, any number (0 = budgets only)
--
-- ARGV[1]      now, ms epoch
-- ARGV[2]      tenant burst ms: capacity of a tenant's buckets, as refill time
-- ARGV[3..n+1] the tenants whose hashes are KEYS[2..n], in the same order
--
-- Returns {tenants HGETALL, tenant of KEYS[2], ..., tenant of KEYS[n]}, a
-- tenant being {HGETALL of its hash, requests available, tokens available}:
-- the levels as strings (fmt), '0' for a kind without budget (or a tenant
-- whose budget is gone).

local now = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])

-- level refills one of a tenant's buckets, last refilled at ts, to now
-- (per_minute 0 = no budget of that kind).
local function level(raw, ts, per_minute)
  if per_minute <= 0 then
    return '0'
  end
  local cap, rate = per_minute * burst / 60000, per_minute / 60000
  return fmt(refill(tonumber(raw), cap, rate, math.max(0, now - ts)))
end

local out = {redis.call('HGETALL', KEYS[1])}
for i = 2, #KEYS do
  -- A budget that is not JSON is reported by Go, which reads it again.
  local ok, tb = pcall(tenant_budget, redis.call('HGET', KEYS[1], ARGV[i + 1]))
  local th = redis.call('HMGET', KEYS[i], 'rlvl', 'tlvl', 'ts')
  local r, t = '0', '0'
  if ok and tb then
    local ts = tonumber(th[3]) or now
    r, t = level(th[1], ts, tb.rpm), level(th[2], ts, tb.tpm)
  end
  out[i] = {redis.call('HGETALL', KEYS[i]), r, t}
end
return out
