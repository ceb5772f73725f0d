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
	ks, args := l.reserveArgs(r, in, o, now, false)
	res, err := reserveScript.Run(ctx, l.rdb, ks, args...).Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("quota: reserve %s: %w", account, err)
	}
	if len(res) < 2 {
		return Decision{}, fmt.Errorf("quota: reserve %s: unexpected reply %v", account, res)
	}
	switch res[0] {
	case 0:
		base := now.UnixMilli()
		if len(res) >= 5 {
			base = res[4] // the script's now: Redis's clock
		}
		r.At = time.UnixMilli(base + res[1]) // the send time, as the script recorded it
		if len(res) >= 4 {
			r.Cost.Tokens, r.EstimatedInput = res[2], res[3]
		}
		return Decision{OK: true, Reservation: r, Wait: time.Duration(res[1]) * time.Millisecond}, nil
	case 1:
		reason := int64(0)
		if len(res) > 2 {
			reason = res[2]
		}
		return Decision{Wait: time.Duration(res[1]) * time.Millisecond, TenantLimited: reason == 1, FairShare: reason == 2, Probe: reason == 3}, nil
	case 2:
		d := Decision{Paused: true}
		if res[1] > 0 {
			d.PausedUntil = time.UnixMilli(res[1])
		}
		return d, nil
	case 3:
		return Decision{DailyExhausted: true, DailyResetAt: l.nextMidnight(now)}, nil
	case 4:
		return Decision{}, ErrCostExceedsLimit
	case 6:
		d := Decision{ModelPaused: true}
		if res[1] > 0 {
			d.PausedUntil = time.UnixMilli(res[1])
		}
		return d, nil
	}
	return Decision{}, fmt.Errorf("quota: reserve %s: unexpected reply %v", account, res)
}

// reserveArgs are reserve.lua's KEYS and ARGV (see its header, one per
// line there) for reservation r; peek asks what the account could do
// without admitting anything.
func (l *Limiter) reserveArgs(r Reservation, in *Input, o reserveOptions, now time.Time, peek bool) ([]string, []any) {
	account := r.Account
	ks := []string{
		keys.Limits(account),           // 1
		keys.Inflight(account),         // 2
		keys.Day(account, l.date(now)), // 3
		keys.Pause(account),            // 4
		keys.Tenants(account),          // 5
		keys.Tenant(account, o.tenant), // 6
		keys.FairSeen(account),         // 7
		keys.FairVT(account),           // 8
		keys.Calib(account),            // 9
		keys.Sent(account),             // 10
		keys.PauseModels(account),      // 11
	}
	inChars, inTokens := int64(-1), r.EstimatedInput
	if in != nil {
		inChars, inTokens = in.Chars, in.Tokens
	}
	schedule := l.cfg.Schedule
	if o.schedule > 0 && o.schedule < schedule {
		schedule = o.schedule
	}
	args := []any{
		clock.ScriptNow(l.cfg.Clock),                // 1 now
		r.Cost.Requests,                             // 2 request cost
		r.Cost.Tokens,                               // 3 token cost
		l.cfg.RPM,                                   // 4
		l.cfg.TPM,                                   // 5
		l.cfg.Burst.Milliseconds(),                  // 6
		l.dailyStop(l.cfg.DailyRequests),            // 7
		l.dailyStop(l.cfg.DailyTokens),              // 8
		l.cfg.ReservationTTL.Milliseconds(),         // 9
		r.memberPrefix(),                            // 10
		dayTTL.Milliseconds(),                       // 11
		max(l.cfg.Probe, 0),                         // 12
		schedule.Milliseconds(),                     // 13
		o.tenant,                                    // 14
		l.date(now),                                 // 15
		l.nextMidnight(now).Sub(now).Milliseconds(), // 16
		TenantBurst.Milliseconds(),                  // 17
		l.fairGrace().Milliseconds(),                // 18
		FairSlack.Milliseconds(),                    // 19
		FairMaxLag.Milliseconds(),                   // 20
		FairRetry.Milliseconds(),                    // 21
		inChars,                                     // 22
		inTokens,                                    // 23
		r.Cost.Tokens,                               // 24 max output (with 22 >= 0)
		boolArg(peek),                               // 25
		o.model,                                     // 26
	}
	return ks, args
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
