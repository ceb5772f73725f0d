-- sem_state.lua: read an account's adaptive concurrency limit and the number
-- of permits held. Read only: expired permits are not counted, not removed.
--
-- KEYS[1] state hash    promptq:{acct}:conc (field limit)
-- KEYS[2] permits zset  promptq:{acct}:conc:permits (score lease expiry ms)
--
-- ARGV[1] '' (now from Redis TIME) or, in tests only, now in ms epoch
-- ARGV[2] min limit
-- ARGV[3] max limit
-- ARGV[4] initial limit, used while the hash holds none
--
-- Returns {limit, in_flight}.

-- Time comes from Redis (TIME) through script_now (now.lua, prepended by
-- Go), one clock for every worker.

local now = script_now(ARGV[1])
local limit = tonumber(redis.call('HGET', KEYS[1], 'limit')) or tonumber(ARGV[4])
limit = math.max(tonumber(ARGV[2]), math.min(tonumber(ARGV[3]), limit))
return {limit, redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf')}
