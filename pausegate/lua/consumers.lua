-- consumers.lua: mark a running gate of an account alive, and count the live
-- ones.
--
-- KEYS[1]  consumers sorted set (keys.Consumers(acct)): member = gate
--          identity, score = when its liveness lapses (ms)
-- ARGV[1]  gate identity to mark; '' only counts
-- ARGV[2]  liveness in ms: > 0 marks ARGV[1] alive that long, <= 0 removes it
-- ARGV[3]  '' (now from Redis TIME) or, in tests only, now in ms
--
-- Returns the number of live gates after the call.
-- Time comes from Redis (TIME): gates on hosts with different clocks must
-- agree on which of them are alive. A non-empty ARGV[3] is a test-only
-- override, passed only by internal/clock's Fake.
local now = script_now(ARGV[3]) -- now.lua, prepended by Go
local ttl = tonumber(ARGV[2])
if ARGV[1] ~= '' then
  if ttl > 0 then
    redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
    redis.call('PEXPIRE', KEYS[1], 2 * ttl)
  else
    redis.call('ZREM', KEYS[1], ARGV[1])
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
