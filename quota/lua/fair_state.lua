-- fair_state.lua: read the weighted fair sharing state of an account: the
-- tenants with pending work at ARGV[1] and their virtual times. Read only.
--
-- KEYS[1] fair pending zset promptq:{acct}:fair:seen (tenant -> ms until which it has pending work)
-- KEYS[2] fair vt zset      promptq:{acct}:fair:vt (tenant -> virtual time)
--
-- ARGV[1] now, ms epoch
--
-- Returns a flat list: tenant, pending until ms, virtual time ('' when none), ...
local out = {}
local seen = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf', 'WITHSCORES')
for i = 1, #seen, 2 do
  table.insert(out, seen[i])
  table.insert(out, seen[i + 1])
  table.insert(out, redis.call('ZSCORE', KEYS[2], seen[i]) or '')
end
return out
