-- settle.lua: close a reservation. It removes the reservation from the
-- in-flight set, reconciles the debit with what the provider charged, learns
-- limits from the response headers and moves the levels to the provider's
-- remaining figures.
--
-- Go composes the script that runs from named parts (quota/scripts.go):
-- now.lua, bucket.lua, calib.lua, then settle/limits.lua, debit.lua,
-- calibrate.lua and sync.lua, then this file, which runs them in order.

local K = {
  limits   = KEYS[1], -- hash promptq:{acct}:limits (fields: see bucket.lua)
  inflight = KEYS[2], -- zset promptq:{acct}:inflight
  day      = KEYS[3], -- hash promptq:{acct}:day:<date of the reservation>
  stats    = KEYS[4], -- hash promptq:{acct}:stats (est_n, est_abs, est_rel)
  tenants  = KEYS[5], -- hash promptq:{acct}:tenants (read only; tenant -> budget JSON)
  tenant   = KEYS[6], -- hash promptq:{acct}:tenant:<tenant of the reservation>
  calib    = KEYS[7], -- hash promptq:{acct}:calib (see calib.lua)
  sent     = KEYS[8], -- zset promptq:{acct}:sent (see reserve.lua)
}

local A = {
  now                = ARGV[1],            -- '' (now from Redis TIME) or, in tests only, now in ms epoch
  mode               = ARGV[2],            -- 'settle', 'unknown', 'refund' or 'sync' (1)
  member             = ARGV[3],            -- inflight member of the reservation
  requests           = tonumber(ARGV[4]),  -- reserved requests
  tokens             = tonumber(ARGV[5]),  -- reserved tokens
  at_ms              = tonumber(ARGV[6]),  -- reservation (send) time, ms epoch
  charged            = tonumber(ARGV[7]),  -- settle: tokens the provider's TPM bucket charged
  total              = tonumber(ARGV[8]),  -- settle: actual total tokens (billed; goes to the daily counter)
  estimated_input    = tonumber(ARGV[9]),  -- settle: estimated input tokens (<= 0: no estimate sample)
  input              = tonumber(ARGV[10]), -- settle: actual input tokens
  rpm                = tonumber(ARGV[11]), -- configured requests per minute (0 = none)
  tpm                = tonumber(ARGV[12]), -- configured tokens per minute (0 = none)
  burst_ms           = tonumber(ARGV[13]), -- capacity of a configured bucket, as refill time
  limit_requests     = tonumber(ARGV[14]), -- x-ratelimit-limit-requests (-1 unknown)
  remaining_requests = tonumber(ARGV[15]), -- x-ratelimit-remaining-requests (-1 unknown)
  limit_tokens       = tonumber(ARGV[16]), -- x-ratelimit-limit-tokens (-1 unknown)
  remaining_tokens   = tonumber(ARGV[17]), -- x-ratelimit-remaining-tokens (-1 unknown)
  inferred_requests  = tonumber(ARGV[18]), -- requests limit inferred from remaining+reset (-1 none) (2)
  inferred_tokens    = tonumber(ARGV[19]), -- tokens limit inferred likewise (-1 none) (2)
  day_ttl_ms         = ARGV[20],           -- TTL of the day hash
  reset_requests_ms  = tonumber(ARGV[21]), -- x-ratelimit-reset-requests in ms (-1 unknown)
  reset_tokens_ms    = tonumber(ARGV[22]), -- x-ratelimit-reset-tokens in ms (-1 unknown)
  reorder_window_ms  = tonumber(ARGV[23]), -- requests sent less than this apart may arrive in either order (3)
  tenant             = ARGV[24],           -- tenant of the reservation ('' = none: K.tenants, K.tenant untouched)
  date               = ARGV[25],           -- budget day of the reservation, YYYY-MM-DD
  tenant_burst_ms    = tonumber(ARGV[26]), -- capacity of a tenant's buckets, as refill time
  sent_member        = ARGV[27],           -- the reservation's member of the sent set (id:chars:tokens:max_output)
  bad                = ARGV[28] == '1',    -- the caller refused an absurd accounting signal (4)
}
-- (1) 'settle': usage known; 'unknown': outcome unknown, keep the debit;
--     'refund': the provider did not charge, give it back; 'sync': a
--     stream just opened, apply its headers and keep the reservation in
--     flight for the settle that follows.
-- (2) Used only while no limit has been learned from a limit header.
-- (3) See "Header sync" in settle/sync.lua.
-- (4) Negative or impossibly large usage, counted in the calibration's
--     'bad'.
--
-- Returns 1 when the reservation was still in flight (its debit was
-- reconciled), 0 when it had already been settled or had expired (the debit
-- is left alone, so settling twice is harmless). Headers are applied either way.
--
local now = script_now(A.now)

local removed = 0
if A.mode ~= 'sync' then
  removed = redis.call('ZREM', K.inflight, A.member)
end
-- Any settled outcome ends the cold-start probe of reserve.lua.
redis.call('HSET', K.limits, 'seen', 1)

local s = settle_read(K.limits, now)
settle_learn(K.calib, A, s)
settle_refill(A, s)
if removed == 1 then
  settle_debit(K, A, s)
  if A.tenant ~= '' and A.mode ~= 'unknown' then
    settle_tenant(K, A, now)
  end
end
-- The sent set keeps what the provider charged: a refused request leaves it.
if A.mode == 'refund' then
  redis.call('ZREM', K.sent, A.sent_member)
end
settle_calibrate(K, A, s, now)
settle_sync(K, A, s, now)
settle_write(K.limits, s)
return removed
