-- now.lua: the clock of the pause gate's scripts. Go prepends this file to
-- them, so it has no KEYS or ARGV of its own and returns nothing.

-- Time comes from Redis (TIME), one clock for every worker: no caller's
-- clock can move shared state or decide which gates are alive. A non-empty
-- now argument is a test-only override, passed only by internal/clock's Fake.
local function script_now(arg)
  if arg ~= nil and arg ~= '' then
    return tonumber(arg)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
