-- reserve/codes.lua: reserve.lua's reply codes, named alike in Go
-- (quota/limiter.go: reply*, why*). See reserve.lua for each reply.
local ADMITTED = 0     -- {ADMITTED, wait_ms, tokens, input, now}
local WAIT = 1         -- {WAIT, wait_ms, why}
local PAUSED = 2       -- {PAUSED, until_ms}
local DAILY = 3        -- {DAILY, which}
local TOO_LARGE = 4    -- {TOO_LARGE, which}
local PEEK = 5         -- {PEEK, wait_ms, tokens, requests_left, tokens_left}
local MODEL_PAUSED = 6 -- {MODEL_PAUSED, until_ms}

-- Why a WAIT reply holds the request back.
local WHY_ACCOUNT = 0 -- the account's headroom
local WHY_TENANT = 1  -- the tenant's budget
local WHY_FAIR = 2    -- fair sharing: another tenant with pending work is behind
local WHY_PROBE = 3   -- the cold-start probe

-- Which bucket or budget a DAILY or TOO_LARGE reply is about.
local REQUESTS = 1
local TOKENS = 2
