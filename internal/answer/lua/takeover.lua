-- takeover.lua: take over the claim of an attempt whose worker process has
-- died (kill -9, a lost host), so its task does not wait for the claim's
-- whole TTL. The owner must have been seen dead twice, at least ARGV[4] ms
-- apart by Redis's clock: a live worker that was only cut off from Redis
-- refreshes its liveness key within seconds of Redis coming back, and keeps
-- its claim.
--
-- KEYS[1]  answer key (keys.Answer(acct, taskID))
-- KEYS[2]  the claim owner's liveness key (keys.Alive(acct, proc))
-- KEYS[3]  the claim owner's suspect key (keys.Suspect(acct, proc))
-- ARGV[1]  the claim value the caller read ('claim:<owner>')
-- ARGV[2]  new owner
-- ARGV[3]  claim TTL in ms
-- ARGV[4]  grace in ms
--
-- Returns 1 when the claim is now ARGV[2]'s, 0 when the record changed
-- (claim again), -1 when the owner is alive, -2 when the owner is suspected
-- but the grace has not passed (wait and try again).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('DEL', KEYS[3])
  return -1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local grace = tonumber(ARGV[4])
local first = tonumber(redis.call('GET', KEYS[3]))
if not first then
  redis.call('SET', KEYS[3], now, 'PX', grace * 10)
  return -2
end
if now - first < grace then
  return -2
end
redis.call('SET', KEYS[1], 'claim:' .. ARGV[2], 'PX', ARGV[3])
return 1
