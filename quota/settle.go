package quota

import (
	"context"
	"errors"
	"fmt"

	"github.com/promptq/promptq/internal/clock"
	"github.com/promptq/promptq/internal/keys"
)

// Usage is what a finished request actually used, from the response body.
type Usage struct {
	InputTokens, OutputTokens, TotalTokens int64
}

// total is TotalTokens, or input+output when the provider left it out.
func (u Usage) total() int64 { return max(u.TotalTokens, u.InputTokens+u.OutputTokens) }

// MaxUsageTokens is the most tokens one request is believed to use: no
// model's context window comes near it, so a usage figure above it is
// garbage, like a negative one.
const MaxUsageTokens = 100_000_000

// Bad reports whether u cannot be true (a negative figure, or more tokens
// than MaxUsageTokens). Settle refuses such usage: the reservation's debit
// stands and the calibration counts the signal as bad.
func (u Usage) Bad() bool {
	return u.InputTokens < 0 || u.OutputTokens < 0 || u.TotalTokens < 0 ||
		u.InputTokens > MaxUsageTokens || u.OutputTokens > MaxUsageTokens || u.TotalTokens > MaxUsageTokens
}

// Settle closes a reservation whose request the provider processed.
//
// usage nil means the outcome is unknown (timeout, broken stream): the debit
// is kept. With usage, the token debit becomes what the provider charged at
// admission: actual input + the max output that was reserved (OpenAI counts
// max_output_tokens, not the tokens generated), never less than the actual
// total. So only the input estimate's error is given back or taken; unused
// output is not refunded, because the provider does not refund it either.
// The daily token counter becomes the actual total (that is what is billed).
// Headers, when known, then move the buckets (see doc.go).
//
// For a request the provider did not charge (429, refused), call Refund.
// Settling twice, or after the reservation expired, changes nothing but the
// header sync.
func (l *Limiter) Settle(ctx context.Context, r Reservation, info HeaderInfo, usage *Usage) error {
	if usage != nil && usage.Bad() {
		// Garbage from the provider: keep the debit, count it, learn nothing.
		return l.settleBad(ctx, "unknown", r, info, 0, 0, 0, true)
	}
	if usage == nil {
		return l.settle(ctx, "unknown", r, info, 0, 0, 0)
	}
	charged := max(usage.total(), r.Cost.Tokens) // no estimate: refund nothing
	if r.EstimatedInput > 0 && r.EstimatedInput <= r.Cost.Tokens {
		reservedOutput := r.Cost.Tokens - r.EstimatedInput
		charged = max(usage.total(), usage.InputTokens+reservedOutput)
	}
	return l.settle(ctx, "settle", r, info, charged, usage.total(), usage.InputTokens)
}

// Refund closes a reservation whose request the provider did not charge
// (429, a 4xx before processing, connection refused): the debit is given
// back and the headers, if any, are applied.
func (l *Limiter) Refund(ctx context.Context, r Reservation, info HeaderInfo) error {
	return l.settle(ctx, "refund", r, info, 0, 0, 0)
}

func (l *Limiter) settle(ctx context.Context, mode string, r Reservation, info HeaderInfo, charged, total, input int64) error {
	return l.settleBad(ctx, mode, r, info, charged, total, input, false)
}

// settleBad is settle; bad says the caller refused an absurd signal.
func (l *Limiter) settleBad(ctx context.Context, mode string, r Reservation, info HeaderInfo, charged, total, input int64, bad bool) error {
	if err := keys.ValidateAccount(r.Account); err != nil {
		return fmt.Errorf("quota: %w", err)
	}
	if r.ID == "" {
		return errors.New("quota: settle: empty reservation")
	}
	k, a := l.settleCall(mode, r, info, charged, total, input, bad)
	err := settleScript.Run(ctx, l.rdb, k.list(), a.list()...).Err()
	if err != nil {
		return fmt.Errorf("quota: %s %s: %w", mode, r.Account, err)
	}
	return nil
}

// RecordThrottle counts one 429 answer for account (shown by Snapshot).
func (l *Limiter) RecordThrottle(ctx context.Context, account string) error {
	if err := keys.ValidateAccount(account); err != nil {
		return fmt.Errorf("quota: %w", err)
	}
	if err := throttleScript.Run(ctx, l.rdb, []string{keys.Stats(account)}).Err(); err != nil {
		return fmt.Errorf("quota: record throttle %s: %w", account, err)
	}
	return nil
}

// settleKeys are settle.lua's KEYS, by the names the script gives them
// (its table K); list orders them as KEYS.
type settleKeys struct {
	limits, inflight, day, stats, tenants, tenant, calib, sent string
}

func (k settleKeys) list() []string {
	return []string{k.limits, k.inflight, k.day, k.stats, k.tenants, k.tenant, k.calib, k.sent}
}

// settleArgv are settle.lua's ARGV, by the names the script gives them
// (its table A, which documents each); list orders them as ARGV.
type settleArgv struct {
	now                                      any // clock.ScriptNow
	mode, member                             string
	requests, tokens, atMs                   int64
	charged, total, estimatedInput, input    int64
	rpm, tpm, burstMs                        int64
	limitRequests, remainingRequests         int64
	limitTokens, remainingTokens             int64
	inferredRequests, inferredTokens         int64
	dayTTLMs, resetRequestsMs, resetTokensMs int64
	reorderWindowMs                          int64
	tenant, date                             string
	tenantBurstMs                            int64
	sentMember                               string
	bad                                      bool
}

func (a settleArgv) list() []any {
	return []any{a.now, a.mode, a.member, a.requests, a.tokens, a.atMs,
		a.charged, a.total, a.estimatedInput, a.input, a.rpm, a.tpm, a.burstMs,
		a.limitRequests, a.remainingRequests, a.limitTokens, a.remainingTokens,
		a.inferredRequests, a.inferredTokens, a.dayTTLMs, a.resetRequestsMs, a.resetTokensMs,
		a.reorderWindowMs, a.tenant, a.date, a.tenantBurstMs, a.sentMember, boolArg(a.bad)}
}

// settleCall is settle.lua's KEYS and ARGV to close r in mode with the
// response's headers info (see settleBad for the rest).
func (l *Limiter) settleCall(mode string, r Reservation, info HeaderInfo, charged, total, input int64, bad bool) (settleKeys, settleArgv) {
	date := l.date(r.At)
	k := settleKeys{
		limits:   keys.Limits(r.Account),
		inflight: keys.Inflight(r.Account),
		day:      keys.Day(r.Account, date),
		stats:    keys.Stats(r.Account),
		tenants:  keys.Tenants(r.Account),
		tenant:   keys.Tenant(r.Account, r.Tenant),
		calib:    keys.Calib(r.Account),
		sent:     keys.Sent(r.Account),
	}
	a := settleArgv{
		now:               clock.ScriptNow(l.cfg.Clock),
		mode:              mode,
		member:            r.member(),
		requests:          r.Cost.Requests,
		tokens:            r.Cost.Tokens,
		atMs:              r.At.UnixMilli(),
		charged:           charged,
		total:             total,
		estimatedInput:    r.EstimatedInput,
		input:             input,
		rpm:               l.cfg.RPM,
		tpm:               l.cfg.TPM,
		burstMs:           l.cfg.Burst.Milliseconds(),
		limitRequests:     known(info.Requests.Limit),
		remainingRequests: known(info.Requests.Remaining),
		limitTokens:       known(info.Tokens.Limit),
		remainingTokens:   known(info.Tokens.Remaining),
		inferredRequests:  inferLimit(info.Requests),
		inferredTokens:    inferLimit(info.Tokens),
		dayTTLMs:          dayTTL.Milliseconds(),
		resetRequestsMs:   resetMs(info.Requests),
		resetTokensMs:     resetMs(info.Tokens),
		reorderWindowMs:   ReorderWindow.Milliseconds(),
		tenant:            r.Tenant,
		date:              date,
		tenantBurstMs:     TenantBurst.Milliseconds(),
		sentMember:        r.sentMember(),
		bad:               bad,
	}
	return k, a
}
