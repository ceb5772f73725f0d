-- sem_acquire.lua: take one permit of an account's adaptive concurrency limit
-- (see concurrency.go), unless as many permits as the limit are held.
--
-- KEYS[1] state hash    promptq:{acct}:conc (read only here; fields limit, hold)
-- KEYS[2] permits zset  promptq:{acct}:conc:permits (member permit id, score lease expiry ms)
--
-- ARGV[1] '' (now from Redis TIME) or, in tests only, now in ms epoch
-- ARGV[2] permit id
-- ARGV[3] lease ms: the permit is dropped after this long unless released
-- ARGV[4] min limit
-- ARGV[5] max limit
-- ARGV[6] initial limit, used while the hash holds none
--
-- Returns {code, limit, n}:
--   {1, limit, in_flight, now}  acquired; in_flight counts this permit; now
--                          (Redis's clock) is the permit's acquired time
--   {0, limit, retry_ms}   the limit is reached; retry_ms is when a permit is
--                          likely free: the smoothed hold time divided by the
--                          limit (one permit comes back that often on average),
--                          at least 10 ms, at most until the oldest lease ends

-- Time comes from Redis (TIME) through script_now (now.lua, prepended by
-- Go), one clock for every worker.

local now, lease = script_now(ARGV[1]), tonumber(ARGV[3])
local lo, hi = tonumber(ARGV[4]), tonumber(ARGV[5])

-- Permits of dead workers come back when their lease ends.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)

local st = redis.call('HMGET', KEYS[1], 'limit', 'hold')
local limit = math.max(lo, math.min(hi, tonumber(st[1]) or tonumber(ARGV[6])))
local n = redis.call('ZCARD', KEYS[2])

if n < limit then
  redis.call('ZADD', KEYS[2], now + lease, ARGV[2])
  -- The set lives as long as its longest lease (workers may differ in Lease).
  if redis.call('PTTL', KEYS[2]) < lease then
    redis.call('PEXPIRE', KEYS[2], lease)
  end
  return {1, limit, n + 1, now}
end

local hold = tonumber(st[2]) or 100 -- no release seen yet: poll every 100 ms
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local until_expiry = tonumber(first[2]) - now
local wait = math.min(math.max(math.ceil(hold / limit), 10), until_expiry)
return {0, limit, wait}
