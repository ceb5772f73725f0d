-- snapshot.lua: read everything `promptq status` shows about an account, in
-- one round trip and one consistent view. Read only.
--
-- KEYS[1] limits hash    promptq:{acct}:limits
-- KEYS[2] inflight zset  promptq:{acct}:inflight
-- KEYS[3] day hash       promptq:{acct}:day:<today>
-- KEYS[4] stats hash     promptq:{acct}:stats
-- KEYS[5] calib hash     promptq:{acct}:calib
--
-- ARGV[1] now, ms epoch
--
-- Returns {limits HGETALL, day HGETALL, stats HGETALL, in-flight count
-- (unexpired), calib HGETALL}.
return {
  redis.call('HGETALL', KEYS[1]),
  redis.call('HGETALL', KEYS[3]),
  redis.call('HGETALL', KEYS[4]),
  redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[1], '+inf'),
  redis.call('HGETALL', KEYS[5]),
}
