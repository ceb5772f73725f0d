-- sem_release.lua: give back one permit of an account's adaptive concurrency
-- limit and let its outcome move the limit (AIMD, see concurrency.go).
--
-- KEYS[1] state hash    promptq:{acct}:conc, fields:
--                         limit   the cluster-wide limit
--                         inc_at  ms of the last additive increase (or of the
--                                 first release / last decrease)
--                         dec_at  ms of the last multiplicative decrease
--                         lat     EWMA of success latency, ms (the baseline)
--                         hold    EWMA of how long permits are held, ms
-- KEYS[2] permits zset  promptq:{acct}:conc:permits (member permit id, score lease expiry ms)
--
-- ARGV[1]  '' (now from Redis TIME) or, in tests only, now in ms epoch
-- ARGV[2]  permit id
-- ARGV[3]  acquired, ms epoch (the permit's Acquired)
-- ARGV[4]  load signal (quota.LoadSignal): 0 none, 1 healthy, 2 overload
-- ARGV[5]  latency ms, may be fractional (<= 0 = unknown: no latency signal)
-- ARGV[6]  ample: 1 when the quota limiter reports ample headroom, else 0
-- ARGV[7]  min limit
-- ARGV[8]  max limit
-- ARGV[9]  initial limit, used while the hash holds none
-- ARGV[10] increase interval ms: at most one +1 per interval
-- ARGV[11] decrease factor in (0, 1)
-- ARGV[12] decrease cooldown ms: at most one decrease per cooldown
-- ARGV[13] latency rise multiple (<= 0 = off)
-- ARGV[14] state hash TTL ms
--
-- Returns {limit, change, held}: the limit after this release; change 1 if it
-- went up, -1 if down, 0 if not; held 1 if the permit was still held, 0 if its
-- lease had ended or it was released before.

-- Time comes from Redis (TIME) through script_now (now.lua, prepended by
-- Go), one clock for every worker.

local ALPHA = 0.1 -- EWMA weight of a new sample (about the last 10 count)

local now, id, acquired = script_now(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local outcome, lat = tonumber(ARGV[4]), tonumber(ARGV[5])
local ample = ARGV[6] == '1'
local lo, hi = tonumber(ARGV[7]), tonumber(ARGV[8])
local every, factor = tonumber(ARGV[10]), tonumber(ARGV[11])
local cooldown, rise = tonumber(ARGV[12]), tonumber(ARGV[13])

redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local in_flight = redis.call('ZCARD', KEYS[2]) -- before this release
local held = redis.call('ZREM', KEYS[2], id)

local st = redis.call('HMGET', KEYS[1], 'limit', 'inc_at', 'dec_at', 'lat', 'hold')
local limit = math.max(lo, math.min(hi, tonumber(st[1]) or tonumber(ARGV[9])))
local inc_at = tonumber(st[2]) or now -- the first increase comes one interval after the first release
local dec_at = tonumber(st[3]) or 0
local base = tonumber(st[4])
local hold = tonumber(st[5])

local h = now - acquired
if h >= 0 then
  if hold then hold = hold + ALPHA * (h - hold) else hold = h end
end

-- Signals. A success is "flat" when its latency is within half of the way
-- from the baseline to the rise threshold (2.0 -> 1.5x); between flat and
-- the threshold it neither grows nor shrinks the limit.
local overload = outcome == 2
local flat = false
if outcome == 1 then
  if lat <= 0 then
    flat = true -- no latency measured: no evidence of a rise
  elseif not base then
    base, flat = lat, true
  else
    local sample = lat
    if rise > 0 then
      if lat > rise * base then
        overload = true
      elseif lat <= (1 + (rise - 1) / 2) * base then
        flat = true
      end
      -- One slow outlier must not drag the baseline up: clamp the sample.
      sample = math.min(lat, rise * base)
    else
      flat = true
    end
    base = base + ALPHA * (sample - base)
  end
end

local change = 0
if overload then
  -- One cut per cooldown, and none for a permit taken before (or in the same
  -- ms as) the last cut: its signal reports on the old, larger limit, which
  -- has already been cut.
  if now - dec_at >= cooldown and acquired > dec_at then
    local nl = math.max(lo, math.floor(limit * factor))
    if nl < limit then change = -1 end
    limit, dec_at, inc_at = nl, now, now
  end
elseif outcome == 1 and flat and ample and now - inc_at >= every then
  -- Grow only while the limit is in use (at least half of it held), so an
  -- idle account does not drift to Max and then burst into an overload.
  if in_flight * 2 >= limit then
    if limit < hi then
      limit, change = limit + 1, 1
    end
    inc_at = now
  end
end

redis.call('HSET', KEYS[1], 'limit', limit, 'inc_at', inc_at, 'dec_at', dec_at)
if base then redis.call('HSET', KEYS[1], 'lat', base) end
if hold then redis.call('HSET', KEYS[1], 'hold', hold) end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[14]))
return {limit, change, held}
