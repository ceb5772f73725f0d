-- settle/sync.lua: move the account's levels to the provider's remaining
-- figures, if this response is fresh.
--
-- Header sync. The provider's remaining figure beats the local model, in both
-- directions. The provider measured it when this request reached it, so
-- in-flight reservations sent at or after this one's send time (A) were not
-- in it, and those sent within the reorder window W before it (N) may or may
-- not have been: requests sent a few ms apart, from different goroutines or
-- hosts, reach the provider in either order. The provider's level is thus
-- somewhere in
--     [remaining - A - N, remaining - A]
-- and the local level is moved into that interval by the smallest change:
-- lowered to its top when above (traffic the limiter never saw, estimate
-- error), raised to its bottom when below (capacity the local model wrongly
-- holds back: expired reservations, other clients' traffic ending), left
-- alone inside it, where the local model, which debits every reservation,
-- knows better. Taking the top as the provider's level would over-estimate
-- it by a whole request whenever a request sent just before this one was
-- overtaken, and a later reservation would turn that into a 429.
-- The provider has refilled since it measured (from about the send time
-- to now), and charged the requests sent after this one as they reached
-- it: the top is the provider's bucket replayed from remaining at the send
-- time, refill up to its capacity and those requests at their send times.
-- Up to half the provider's bucket of the refill since is then kept back:
-- the local level trails the provider's by that much, a margin against
-- estimate errors that costs burst headroom, not sustained rate. Refill
-- beyond it counts: without it a bucket smaller than a response latency
-- of refill (1 s buckets, 2 s answers) would hold the rate at
-- bucket/latency. Which responses may move the levels, with hat the newest send time
-- whose headers were used:
--   send time >= hat + W   newer than every response used: moves the levels
--                          into the interval
--   within W of hat        order unknown (it may have reached the provider
--                          before a response already used, or after it but
--                          settled later, so that one is no longer in
--                          flight): may only lower the levels to the top
--   send time < hat - W    older: ignored, since newer facts already cover it
--                          and its "sent after" set is gone


-- sync_level moves level into [lo, hi]; with only_lower it may only bring
-- it down to hi.
local function sync_level(level, lo, hi, only_lower)
  if level == nil then
    return lo
  elseif level > hi then
    return hi
  elseif level < lo and not only_lower then
    return lo
  end
  return level
end

-- settle_inflight sums the cost of in-flight reservations sent at or after
-- at (the provider had not seen them) and of those sent within the window
-- win before it (it may not have); member, the reservation itself, is
-- neither. afters lists {send ms, requests, tokens} of those sent after, by
-- send time.
local function settle_inflight(inflight_key, member, at, win)
  local after_r, after_t, near_r, near_t = 0, 0, 0, 0
  local afters = {}
  for _, m in ipairs(redis.call('ZRANGE', inflight_key, 0, -1)) do
    local _, mr, mt, mat = string.match(m, '^([^:]*):(%d+):(%d+):(%d+)$')
    mat = tonumber(mat)
    if m == member then
      -- this request itself (still in flight in 'sync' mode): counted
    elseif mat and mat >= at then
      after_r = after_r + tonumber(mr)
      after_t = after_t + tonumber(mt)
      afters[#afters + 1] = {mat, tonumber(mr), tonumber(mt)}
    elseif mat and mat >= at - win then
      near_r = near_r + tonumber(mr)
      near_t = near_t + tonumber(mt)
    end
  end
  table.sort(afters, function(a, b) return a[1] < b[1] end)
  return after_r, after_t, near_r, near_t, afters
end

-- provider_now replays the provider's bucket from this response's
-- measurement (rem at the send time at) to now: refill at its own rate up
-- to its capacity, less the requests sent after this one (afters), each at
-- its send time. It then keeps back the refill since the measurement, up to
-- half the bucket: a margin against estimate errors that costs burst
-- headroom, not rate (see "Header sync"). i is 2 (requests) or 3 (tokens);
-- after is the sum of afters' column i.
local function provider_now(rem, limit, capl, i, after, afters, at, now)
  if limit <= 0 then
    return rem - after -- the provider's limit is unknown: nothing to credit
  end
  local cap, rate = limit, limit / 60000
  if capl > 0 and capl < cap then cap = capl end
  local lvl, t = rem, at
  for _, a in ipairs(afters) do
    local ta = math.min(a[1], now) -- one scheduled later is charged now
    lvl = math.min(cap, lvl + math.max(0, ta - t) * rate) - a[i]
    t = math.max(t, ta)
  end
  lvl = math.min(cap, lvl + math.max(0, now - t) * rate)
  -- Never below remaining less the later requests, which credits no
  -- refill at all (a full bucket has nothing to hold back).
  return math.max(rem - after, lvl - math.min(cap / 2, math.max(0, now - at) * rate))
end

-- settle_sync moves the levels of s into the provider's interval (see
-- "Header sync") and records the response's send time as the newest used.
local function settle_sync(K, A, s, now)
  local win, at, hat = A.reorder_window_ms, A.at_ms, s.hat
  local sync_r = s.rl > 0 and s.rrem >= 0
  local sync_t = s.tl > 0 and s.trem >= 0
  if not ((sync_r or sync_t) and (hat == nil or at >= hat - win)) then
    return
  end
  local after_r, after_t, near_r, near_t, afters = settle_inflight(K.inflight, A.member, at, win)
  local only_lower = hat ~= nil and at < hat + win
  if sync_r then
    local top = provider_now(s.rrem, s.new_r, s.capl_r, 2, after_r, afters, at, now)
    s.rlvl = sync_level(s.rlvl, top - near_r, top, only_lower)
  end
  if sync_t then
    local top = provider_now(s.trem, s.new_t, s.capl_t, 3, after_t, afters, at, now)
    s.tlvl = sync_level(s.tlvl, top - near_t, top, only_lower)
  end
  if hat == nil or at > hat then
    settle_set(s.fields, 'hat', at)
  end
end
