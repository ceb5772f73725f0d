-- throttle.lua: count one 429 answer for an account.
--
-- KEYS[1] stats hash promptq:{acct}:stats
-- ARGV    none
--
-- Returns the new count of 429s (field throttled).
return redis.call('HINCRBY', KEYS[1], 'throttled', 1)
