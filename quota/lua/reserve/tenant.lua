-- reserve/tenant.lua: the tenant's budget (see bucket.lua for its format):
-- its buckets may hold the request back too, so one producer cannot take the
-- whole account. A tenant without a budget shares the account's headroom
-- freely.

-- tenant_read returns the request's tenant's budget and buckets refilled to
-- now, t = {tb, th, ts, rlvl, tlvl, wait} (wait: ms until rc requests and
-- tc tokens fit its budget), or nil when the request has no tenant or its
-- tenant no budget; or nil and {WAIT, ms until the next budget day,
-- WHY_TENANT} when the tenant's daily requests are used up.
local function tenant_read(K, A, now, rc, tc)
  if A.tenant == '' then
    return nil
  end
  local tb = tenant_budget(redis.call('HGET', K.tenants, A.tenant))
  if not tb then
    return nil
  end
  local th = redis.call('HMGET', K.tenant, 'rlvl', 'tlvl', 'ts', 'day', 'dreq')
  if tb.rpd > 0 and th[4] == A.date and (tonumber(th[5]) or 0) + rc > tb.rpd then
    return nil, {WAIT, A.until_next_day_ms, WHY_TENANT}
  end
  local t = {tb = tb, th = th, ts = tonumber(th[3]) or now, wait = 0}
  local tel = math.max(0, now - t.ts)
  if tb.rpm > 0 then
    local cap, rate = tb.rpm * A.tenant_burst_ms / 60000, tb.rpm / 60000
    t.rlvl = refill(tonumber(th[1]), cap, rate, tel)
    local need = math.min(rc, cap)
    if need > t.rlvl + 1e-6 then -- levels are stored with 6 decimals
      t.wait = math.max(t.wait, math.ceil((need - t.rlvl) / rate))
    end
  end
  if tb.tpm > 0 then
    local cap, rate = tb.tpm * A.tenant_burst_ms / 60000, tb.tpm / 60000
    t.tlvl = refill(tonumber(th[2]), cap, rate, tel)
    local need = math.min(tc, cap)
    if need > t.tlvl + 1e-6 then
      t.wait = math.max(t.wait, math.ceil((need - t.tlvl) / rate))
    end
  end
  return t
end

-- tenant_debit takes rc requests and tc tokens from the tenant's levels and
-- counts the request in its day (date).
local function tenant_debit(tenant_key, t, now, rc, tc, date, ttl_ms)
  local tf = {'ts', math.max(t.ts, now)}
  if t.rlvl then
    table.insert(tf, 'rlvl')
    table.insert(tf, fmt(t.rlvl - rc))
  end
  if t.tlvl then
    table.insert(tf, 'tlvl')
    table.insert(tf, fmt(t.tlvl - tc))
  end
  if t.th[4] == date then
    table.insert(tf, 'dreq')
    table.insert(tf, (tonumber(t.th[5]) or 0) + rc)
  else
    table.insert(tf, 'day')
    table.insert(tf, date)
    table.insert(tf, 'dreq')
    table.insert(tf, rc)
  end
  redis.call('HSET', tenant_key, unpack(tf))
  redis.call('PEXPIRE', tenant_key, ttl_ms)
end
