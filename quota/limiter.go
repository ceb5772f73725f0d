package quota

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/promptq/promptq/internal/clock"
	"github.com/promptq/promptq/internal/keys"
	"github.com/redis/go-redis/v9"
)

// Limiter admits requests so that all workers of an account, on any host,
// together stay at the provider's limits. It is safe for concurrent use; all
// state lives in Redis.
type Limiter struct {
	rdb redis.Scripter
	cfg Config
}

// New returns a Limiter using rdb and cfg (defaults filled in).
func New(rdb redis.Scripter, cfg Config) (*Limiter, error) {
	if rdb == nil {
		return nil, errors.New("quota: nil Redis client")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Limiter{rdb: rdb, cfg: cfg}, nil
}

// ErrCostExceedsLimit is returned by Reserve for a cost that can never fit:
// more tokens (or requests) than the bucket holds when full.
var ErrCostExceedsLimit = errors.New("quota: request cost exceeds the account's limit")

// Reserve asks to send one request of the given cost for account now.
// estimatedInput is the input part of cost.Tokens (0 if unknown); Settle uses
// it to correct the token debit and to measure the estimator.
// Options (WithTenant) vary the call.
func (l *Limiter) Reserve(ctx context.Context, account string, cost Cost, estimatedInput int64, opts ...ReserveOption) (Decision, error) {
	return l.reserve(ctx, account, cost, estimatedInput, nil, opts)
}

// ReserveRequest asks to send one request for account now, whose token cost
// the limiter estimates: the input the provider is likely to charge, from in
// and what the account's calibration learned of the provider's accounting
// (see "Cost calibration" in the package doc), plus maxOutput, the output
// allowance the provider counts at admission. The Decision's Reservation
// carries the cost reserved.
func (l *Limiter) ReserveRequest(ctx context.Context, account string, in Input, maxOutput int64, opts ...ReserveOption) (Decision, error) {
	if in.Chars < 0 || in.Tokens < 0 || maxOutput < 0 {
		return Decision{}, fmt.Errorf("quota: negative input %+v / max output %d", in, maxOutput)
	}
	return l.reserve(ctx, account, Cost{Requests: 1, Tokens: maxOutput}, 0, &in, opts)
}

func (l *Limiter) reserve(ctx context.Context, account string, cost Cost, estimatedInput int64, in *Input, opts []ReserveOption) (Decision, error) {
	if err := keys.ValidateAccount(account); err != nil {
		return Decision{}, fmt.Errorf("quota: %w", err)
	}
	var o reserveOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.tenant != "" {
		if err := keys.ValidateTenant(o.tenant); err != nil {
			return Decision{}, fmt.Errorf("quota: %w", err)
		}
	}
	if cost.Requests < 0 || cost.Tokens < 0 || estimatedInput < 0 {
		return Decision{}, fmt.Errorf("quota: negative cost %+v / estimated input %d", cost, estimatedInput)
	}
	now := l.cfg.Clock.Now()
	id, err := newID()
	if err != nil {
		return Decision{}, err
	}
	r := Reservation{
		Account:        account,
		Tenant:         o.tenant,
		ID:             id,
		Cost:           cost,
		At:             time.UnixMilli(now.UnixMilli()),
		EstimatedInput: estimatedInput,
	}
	if in != nil {
		r.Input = *in
	}
	k, a := l.reserveCall(r, in, o, now, false)
	res, err := reserveScript.Run(ctx, l.rdb, k.list(), a.list()...).Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("quota: reserve %s: %w", account, err)
	}
	return l.decision(r, now, res)
}

// Reply codes of reserve.lua (named alike in lua/reserve/codes.lua).
const (
	replyAdmitted    = 0 // {0, wait ms, tokens, input, script now ms}
	replyWait        = 1 // {1, wait ms, why*}
	replyPaused      = 2 // {2, until ms (0 = indefinite)}
	replyDaily       = 3 // {3, 1 requests | 2 tokens}
	replyTooLarge    = 4 // {4, 1 requests | 2 tokens}
	replyPeek        = 5 // {5, wait ms, tokens, requests left ‰, tokens left ‰}
	replyModelPaused = 6 // {6, until ms (0 = indefinite)}
)

// Why a replyWait holds the request back.
const (
	whyAccount = 0 // the account's headroom
	whyTenant  = 1 // the tenant's budget
	whyFair    = 2 // fair sharing
	whyProbe   = 3 // the cold-start probe
)

// decision reads reserve.lua's reply for reservation r asked at now.
func (l *Limiter) decision(r Reservation, now time.Time, res []int64) (Decision, error) {
	if len(res) < 2 {
		return Decision{}, fmt.Errorf("quota: reserve %s: unexpected reply %v", r.Account, res)
	}
	switch res[0] {
	case replyAdmitted:
		base := now.UnixMilli()
		if len(res) >= 5 {
			base = res[4] // the script's now: Redis's clock
		}
		r.At = time.UnixMilli(base + res[1]) // the send time, as the script recorded it
		if len(res) >= 4 {
			r.Cost.Tokens, r.EstimatedInput = res[2], res[3]
		}
		return Decision{OK: true, Reservation: r, Wait: time.Duration(res[1]) * time.Millisecond}, nil
	case replyWait:
		why := waitReason(res)
		return Decision{Wait: time.Duration(res[1]) * time.Millisecond,
			TenantLimited: why == whyTenant, FairShare: why == whyFair, Probe: why == whyProbe}, nil
	case replyPaused:
		return Decision{Paused: true, PausedUntil: untilMs(res[1])}, nil
	case replyDaily:
		return Decision{DailyExhausted: true, DailyResetAt: l.nextMidnight(now)}, nil
	case replyTooLarge:
		return Decision{}, ErrCostExceedsLimit
	case replyModelPaused:
		return Decision{ModelPaused: true, PausedUntil: untilMs(res[1])}, nil
	}
	return Decision{}, fmt.Errorf("quota: reserve %s: unexpected reply %v", r.Account, res)
}

// waitReason is the why of a replyWait (whyAccount when absent).
func waitReason(res []int64) int64 {
	if len(res) > 2 {
		return res[2]
	}
	return whyAccount
}

// untilMs is the end of a pause in ms epoch; zero for 0 (indefinite).
func untilMs(ms int64) time.Time {
	if ms > 0 {
		return time.UnixMilli(ms)
	}
	return time.Time{}
}

// reserveKeys are reserve.lua's KEYS, by the names the script gives them
// (its table K); list orders them as KEYS.
type reserveKeys struct {
	limits, inflight, day, pause, tenants, tenant, fairSeen, fairVT, calib, sent, pauseModels string
}

func (k reserveKeys) list() []string {
	return []string{k.limits, k.inflight, k.day, k.pause, k.tenants, k.tenant,
		k.fairSeen, k.fairVT, k.calib, k.sent, k.pauseModels}
}

// reserveArgv are reserve.lua's ARGV, by the names the script gives them
// (its table A, which documents each); list orders them as ARGV.
type reserveArgv struct {
	now                                       any // clock.ScriptNow
	requests, tokens, rpm, tpm, burstMs       int64
	dailyStopRequests, dailyStopTokens, ttlMs int64
	memberPrefix                              string
	dayTTLMs                                  int64
	probe                                     int
	scheduleMs                                int64
	tenant, date                              string
	untilNextDayMs, tenantBurstMs             int64
	fairGraceMs, fairSlackMs, fairMaxLagMs    int64
	fairRetryMs, inChars, inTokens, maxOutput int64
	peek                                      bool
	model                                     string
}

func (a reserveArgv) list() []any {
	return []any{a.now, a.requests, a.tokens, a.rpm, a.tpm, a.burstMs,
		a.dailyStopRequests, a.dailyStopTokens, a.ttlMs, a.memberPrefix, a.dayTTLMs,
		a.probe, a.scheduleMs, a.tenant, a.date, a.untilNextDayMs, a.tenantBurstMs,
		a.fairGraceMs, a.fairSlackMs, a.fairMaxLagMs, a.fairRetryMs,
		a.inChars, a.inTokens, a.maxOutput, boolArg(a.peek), a.model}
}

// reserveCall is reserve.lua's KEYS and ARGV for reservation r (in: the
// bases of a ReserveRequest estimate, nil for Reserve's given cost); peek
// asks what the account could do without admitting anything.
func (l *Limiter) reserveCall(r Reservation, in *Input, o reserveOptions, now time.Time, peek bool) (reserveKeys, reserveArgv) {
	account, date := r.Account, l.date(now)
	k := reserveKeys{
		limits:      keys.Limits(account),
		inflight:    keys.Inflight(account),
		day:         keys.Day(account, date),
		pause:       keys.Pause(account),
		tenants:     keys.Tenants(account),
		tenant:      keys.Tenant(account, o.tenant),
		fairSeen:    keys.FairSeen(account),
		fairVT:      keys.FairVT(account),
		calib:       keys.Calib(account),
		sent:        keys.Sent(account),
		pauseModels: keys.PauseModels(account),
	}
	a := reserveArgv{
		now:               clock.ScriptNow(l.cfg.Clock),
		requests:          r.Cost.Requests,
		tokens:            r.Cost.Tokens,
		rpm:               l.cfg.RPM,
		tpm:               l.cfg.TPM,
		burstMs:           l.cfg.Burst.Milliseconds(),
		dailyStopRequests: l.dailyStop(l.cfg.DailyRequests),
		dailyStopTokens:   l.dailyStop(l.cfg.DailyTokens),
		ttlMs:             l.cfg.ReservationTTL.Milliseconds(),
		memberPrefix:      r.memberPrefix(),
		dayTTLMs:          dayTTL.Milliseconds(),
		probe:             l.probeLimit(),
		scheduleMs:        l.cfg.Schedule.Milliseconds(),
		tenant:            o.tenant,
		date:              date,
		untilNextDayMs:    l.nextMidnight(now).Sub(now).Milliseconds(),
		tenantBurstMs:     TenantBurst.Milliseconds(),
		fairGraceMs:       l.fairGrace().Milliseconds(),
		fairSlackMs:       FairSlack.Milliseconds(),
		fairMaxLagMs:      FairMaxLag.Milliseconds(),
		fairRetryMs:       FairRetry.Milliseconds(),
		inChars:           -1, // the token cost as given, with inTokens its input estimate
		inTokens:          r.EstimatedInput,
		maxOutput:         r.Cost.Tokens,
		peek:              peek,
		model:             o.model,
	}
	if in != nil {
		a.inChars, a.inTokens = in.Chars, in.Tokens
	}
	if o.schedule > 0 && o.schedule < l.cfg.Schedule {
		a.scheduleMs = o.schedule.Milliseconds()
	}
	return k, a
}

func newID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("quota: reservation id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

func boolArg(b bool) int {
	if b {
		return 1
	}
	return 0
}
