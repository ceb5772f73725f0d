-- estimate.lua: the input tokens reserve.lua would reserve now for a request
-- with the given bases (calib.lua is prepended by Go). Read only.
--
-- KEYS[1] calib hash  promptq:{acct}:calib
-- ARGV[1] input on the chars basis
-- ARGV[2] input on the tokens basis (0 = no tokenizer)
--
-- Returns the estimate in tokens.
local est = cal_estimate(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
return est
