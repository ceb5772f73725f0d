-- fair_state.lua: read the weighted fair sharing state of an account: the
-- tenants that asked since ARGV[1] and their virtual times. Read only.
--
-- KEYS[1] fair seen zset promptq:{acct}:fair:seen (tenant -> ms of its last ask)
-- KEYS[2] fair vt zset   promptq:{acct}:fair:vt (tenant -> virtual time)
--
-- ARGV[1] ms epoch: only tenants that asked at or after it
--
-- Returns a flat list: tenant, last ask ms, virtual time ('' when none), ...
local out = {}
local seen = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf', 'WITHSCORES')
for i = 1, #seen, 2 do
  table.insert(out, seen[i])
  table.insert(out, seen[i + 1])
  table.insert(out, redis.call('ZSCORE', KEYS[2], seen[i]) or '')
end
return out
