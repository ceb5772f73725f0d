-- reserve/daily.lua: the account's daily budget. The day hash counts the
-- budget day's requests (req) and tokens (tok), reservations still in
-- flight included.

-- daily_reply returns {DAILY, which} when rc requests and tc tokens would
-- pass a daily stop (stop 0 = no budget), else nil.
local function daily_reply(day_key, stop_req, stop_tok, rc, tc)
  if stop_req > 0 or stop_tok > 0 then
    local used = redis.call('HMGET', day_key, 'req', 'tok')
    if stop_req > 0 and (tonumber(used[1]) or 0) + rc > stop_req then
      return {DAILY, REQUESTS}
    end
    if stop_tok > 0 and (tonumber(used[2]) or 0) + tc > stop_tok then
      return {DAILY, TOKENS}
    end
  end
  return nil
end

-- daily_debit counts an admitted cost; the day hash lives ttl_ms after.
local function daily_debit(day_key, rc, tc, ttl_ms)
  redis.call('HINCRBY', day_key, 'req', rc)
  redis.call('HINCRBY', day_key, 'tok', tc)
  redis.call('PEXPIRE', day_key, ttl_ms)
end
