-- pause_model.lua: pause an account for one model alone (extend-only), as
-- a pool does when the account answers model_not_found: other models, and
-- other accounts, carry on.
--
-- KEYS[1]  model pauses hash (keys.PauseModels(acct)): model -> until ms (0 = indefinite)
-- ARGV[1]  model
-- ARGV[2]  pause length in ms from now (Redis's clock); 0 = indefinite
-- ARGV[3]  '' (now from Redis TIME) or, in tests only, now in ms
-- ARGV[4]  grace in ms: the hash outlives its latest finite pause this long
--
-- Returns {until, changed}: the model's effective until (ms, 0 =
-- indefinite) and 1 if this call wrote it.
local now = script_now(ARGV[3]) -- now.lua, prepended by Go
local len = tonumber(ARGV[2])
local new = 0
if len > 0 then
  new = now + len
end
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '')
if cur and (cur == 0 or cur > now) then
  -- Active: only ever extended; indefinite beats any finite until.
  if cur == 0 or (new ~= 0 and new <= cur) then
    return {cur, 0}
  end
end
redis.call('HSET', KEYS[1], ARGV[1], new)
-- The hash lives as long as its latest pause (+ grace); an indefinite one
-- keeps it until a resume deletes it.
local keep = -1
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
  local u = tonumber(v) or 0
  if u == 0 then
    keep = -1
    break
  end
  keep = math.max(keep, u - now + tonumber(ARGV[4]))
end
if keep > 0 then
  redis.call('PEXPIRE', KEYS[1], keep)
else
  redis.call('PERSIST', KEYS[1])
end
return {new, 1}
