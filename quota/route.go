package quota

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/keys"
)

// Headroom is what one account of a pool could do for a request now, as
// Peek found it: nothing is reserved.
type Headroom struct {
	Account string
	// Fits means the request could be admitted on this account after Wait
	// (0 = now); false when the account refuses it outright (paused, for
	// the model or wholly; daily budget reached; too large) or holds it
	// for its cold-start probe or a tenant's budget.
	Fits bool
	Wait time.Duration
	// Requests and Tokens are the fractions of the buckets' capacity left
	// now (1 = full, or no limit known; negative = promised to scheduled
	// turns already).
	Requests, Tokens float64
	// Why the account refuses, when !Fits.
	Paused, ModelPaused, DailyExhausted, TooLarge, Probe, TenantLimited bool
	PausedUntil                                                         time.Time // of a (model) pause; zero = indefinite
	DailyResetAt                                                        time.Time // with DailyExhausted: when the budget day resets
}

// Room is the smaller of the two bucket fractions: how much of its capacity
// the account has free.
func (h Headroom) Room() float64 { return min(h.Requests, h.Tokens) }

// Candidate is one account Peek asks about, with the limiter configured for
// it (its own --rpm/--tpm caps).
type Candidate struct {
	Limiter *Limiter
	Account string
}

// Peek asks every candidate account, in one Redis round trip (a pipeline of
// read-only runs of reserve.lua), what it could do for a request of input in
// and output allowance maxOutput: how soon it would fit, and how full its
// buckets are. rdb must be the client the limiters use. opts are those of
// ReserveRequest (WithTenant, WithModel). The answer is a picture, not a
// promise: reserve on the chosen account, which may have been taken since.
func Peek(ctx context.Context, rdb redis.Cmdable, cands []Candidate, in Input, maxOutput int64, opts ...ReserveOption) ([]Headroom, error) {
	if in.Chars < 0 || in.Tokens < 0 || maxOutput < 0 {
		return nil, fmt.Errorf("quota: negative input %+v / max output %d", in, maxOutput)
	}
	var o reserveOptions
	for _, opt := range opts {
		opt(&o)
	}
	for _, c := range cands {
		if err := keys.ValidateAccount(c.Account); err != nil {
			return nil, fmt.Errorf("quota: %w", err)
		}
	}
	if o.tenant != "" {
		if err := keys.ValidateTenant(o.tenant); err != nil {
			return nil, fmt.Errorf("quota: %w", err)
		}
	}
	out, err := peek(ctx, rdb, cands, in, maxOutput, o)
	if err != nil && redis.HasErrorPrefix(errors.Unwrap(err), "NOSCRIPT") {
		// EVALSHA in a pipeline does not fall back to EVAL: load, then ask again.
		if lerr := reserveScript.Load(ctx, rdb).Err(); lerr != nil {
			return nil, fmt.Errorf("quota: load reserve script: %w", lerr)
		}
		out, err = peek(ctx, rdb, cands, in, maxOutput, o)
	}
	return out, err
}

func peek(ctx context.Context, rdb redis.Cmdable, cands []Candidate, in Input, maxOutput int64, o reserveOptions) ([]Headroom, error) {
	pipe := rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(cands))
	for i, c := range cands {
		now := c.Limiter.cfg.Clock.Now()
		r := Reservation{Account: c.Account, ID: "peek", Cost: Cost{Requests: 1, Tokens: maxOutput}, At: now}
		k, a := c.Limiter.reserveCall(r, &in, o, now, true)
		cmds[i] = reserveScript.EvalSha(ctx, pipe, k.list(), a.list()...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("quota: peek: %w", err)
	}
	out := make([]Headroom, len(cands))
	for i, cmd := range cmds {
		res, err := cmd.Int64Slice()
		if err != nil {
			return nil, fmt.Errorf("quota: peek %s: %w", cands[i].Account, err)
		}
		h, err := headroom(cands[i].Account, res)
		if err != nil {
			return nil, err
		}
		if h.DailyExhausted {
			l := cands[i].Limiter
			h.DailyResetAt = l.nextMidnight(l.cfg.Clock.Now())
		}
		out[i] = h
	}
	return out, nil
}

// headroom reads one peek reply (reserve.lua's codes).
func headroom(account string, res []int64) (Headroom, error) {
	h := Headroom{Account: account, Requests: 1, Tokens: 1}
	if len(res) < 2 {
		return h, fmt.Errorf("quota: peek %s: unexpected reply %v", account, res)
	}
	switch res[0] {
	case replyPeek:
		h.Fits, h.Wait = true, time.Duration(res[1])*time.Millisecond
		if len(res) >= 5 {
			h.Requests, h.Tokens = float64(res[3])/1000, float64(res[4])/1000
		}
	case replyWait:
		why := waitReason(res)
		h.Wait, h.TenantLimited, h.Probe = time.Duration(res[1])*time.Millisecond, why == whyTenant, why == whyProbe
		// The probe and a tenant's budget hold the request for a while;
		// anything else (a wait past the schedule) cannot happen in a peek.
	case replyPaused:
		h.Paused, h.PausedUntil = true, untilMs(res[1])
	case replyDaily:
		h.DailyExhausted = true
	case replyTooLarge:
		h.TooLarge = true
	case replyModelPaused:
		h.ModelPaused, h.PausedUntil = true, untilMs(res[1])
	default:
		return h, fmt.Errorf("quota: peek %s: unexpected reply %v", account, res)
	}
	return h, nil
}
