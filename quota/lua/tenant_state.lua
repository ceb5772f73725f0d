-- tenant_state.lua: read an account's tenant budgets and the levels of the
-- tenants named, in one consistent view. Read only.
--
-- KEYS[1]    tenants hash  promptq:{acct}:tenants
-- KEYS[2..n] tenant hashes promptq:{acct}:tenant:<tenant>, any number (0 = budgets only)
--
-- Returns {tenants HGETALL, HGETALL of KEYS[2], ..., HGETALL of KEYS[n]}.
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('HGETALL', KEYS[i])
end
return out
