-- reserve/pause.lua: the account's pause records (written by pausegate).

-- pause_reply returns the reply that refuses a request while the account is
-- paused ({PAUSED, until_ms}) or paused for the request's model alone
-- ({MODEL_PAUSED, until_ms}; model '' = any, which no model pause holds),
-- else nil. until_ms 0 = indefinite.
local function pause_reply(pause_key, models_key, model, now)
  if redis.call('EXISTS', pause_key) == 1 then
    local u = tonumber(redis.call('HGET', pause_key, 'until')) or 0
    if u == 0 or u > now then
      return {PAUSED, u}
    end
  end
  -- A pause of this model alone (an account that answered model_not_found).
  if model ~= '' then
    local mu = redis.call('HGET', models_key, model)
    if mu then
      mu = tonumber(mu) or 0
      if mu == 0 or mu > now then
        return {MODEL_PAUSED, mu}
      end
    end
  end
  return nil
end
