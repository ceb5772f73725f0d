-- tenant_set.lua: set or delete one tenant's budget (see bucket.lua for the
-- format). Deleting also drops the tenant's levels; setting keeps them, so a
-- new budget applies at once to what the tenant has already used.
--
-- KEYS[1] tenants hash   promptq:{acct}:tenants
-- KEYS[2] tenant hash    promptq:{acct}:tenant:<tenant>
--
-- ARGV[1] tenant name
-- ARGV[2] budget as compact JSON, or '' to delete the tenant
--
-- Returns 1 when the tenant had a budget before, else 0.
local existed = redis.call('HEXISTS', KEYS[1], ARGV[1])
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[2])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return existed
