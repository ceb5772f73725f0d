-- settle/calibrate.lua: teach the cost estimate (calib.lua).

-- settle_calibrate feeds the calibration the provider's remaining tokens,
-- or, from a provider that sends none, the usage.
local function settle_calibrate(K, A, s, now)
  if s.trem >= 0 and s.new_t > 0 then
    local cap = s.new_t
    if s.capl_t > 0 and s.capl_t < cap then cap = s.capl_t end
    cal_observe(K.calib, K.sent, A.sent_member, A.at_ms, s.trem, s.new_t, cap, A.reorder_window_ms, now, A.mode ~= 'refund')
  elseif A.mode == 'settle' and not s.trem_bad and s.trem < 0 then
    redis.call('HINCRBY', K.calib, 'missing', 1)
    local c, t = string.match(A.sent_member, ':(%d+):(%d+):%d+$')
    if c and A.input > 0 then
      cal_usage(K.calib, A.input, tonumber(c), tonumber(t))
    end
  end
end
