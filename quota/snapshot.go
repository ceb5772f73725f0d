package quota

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/promptq/promptq/internal/keys"
)

// Snapshot is an account's quota state at one moment, for `promptq status`.
type Snapshot struct {
	Account  string
	Requests BucketState
	Tokens   BucketState
	Daily    DailyState
	InFlight int64 // reservations not yet settled nor expired
	// Estimator quality over settled requests that carried an input estimate.
	EstimateSamples    int64
	EstimateMeanAbsErr float64 // mean |estimated - actual| input tokens
	EstimateBias       float64 // mean (estimated - actual) / actual; > 0 overestimates
	Throttled          int64   // 429s recorded with RecordThrottle
	// Probing means the cold-start probe holds admissions: no limit is
	// known, no response has been settled yet and a reservation is in
	// flight (see Config.Probe).
	Probing bool
	// Calibration is what the limiter learned of how the provider charges.
	Calibration Calibration
	// RampFraction is the share of its limits the account may use after a
	// slow_down (see Limiter.SlowDown); 1 when no ramp is in force. The
	// bucket limits above already include it.
	RampFraction float64
	// Tenants are the account's tenants that have a budget, by name.
	Tenants []TenantState
	// Fair lists the tenants with pending work (a request waiting for
	// headroom, or one that did within FairGrace), by name, with their place
	// in weighted fair sharing.
	Fair      []FairState
	UpdatedAt time.Time
}

// BucketState is one rate bucket as the limiter sees it now.
type BucketState struct {
	Limit     int64         // per-minute limit in force (learned, capped by config); -1 unknown
	Available float64       // units that could be reserved now (negative = in debt)
	ResetIn   time.Duration // until the bucket is full again
	Source    string        // "headers", "config", "ramp" (a slow_down ramp is in force) or "unknown"
}

// Snapshot reads account's quota state (a few read-only scripts).
func (l *Limiter) Snapshot(ctx context.Context, account string) (Snapshot, error) {
	if err := keys.ValidateAccount(account); err != nil {
		return Snapshot{}, fmt.Errorf("quota: %w", err)
	}
	now := l.cfg.Clock.Now()
	date := l.date(now)
	res, err := snapshotScript.RunRO(ctx, l.rdb,
		[]string{keys.Limits(account), keys.Inflight(account), keys.Day(account, date), keys.Stats(account), keys.Calib(account)},
		now.UnixMilli(), l.cfg.RPM, l.cfg.TPM, l.cfg.Burst.Milliseconds()).Slice()
	if err != nil {
		return Snapshot{}, fmt.Errorf("quota: snapshot %s: %w", account, err)
	}
	if len(res) != 8 {
		return Snapshot{}, fmt.Errorf("quota: snapshot %s: unexpected reply", account)
	}
	lim, day, stats := pairs(res[0]), pairs(res[1]), pairs(res[2])
	inflight, _ := res[3].(int64)
	cal := pairs(res[4])

	s := Snapshot{
		Account:  account,
		InFlight: inflight,
		Daily: DailyState{
			Date:         date,
			Requests:     int64(num(day, "req")),
			Tokens:       int64(num(day, "tok")),
			RequestLimit: l.cfg.DailyRequests,
			TokenLimit:   l.cfg.DailyTokens,
			Threshold:    l.cfg.Threshold,
			ResetAt:      l.nextMidnight(now),
		},
		EstimateSamples: int64(num(stats, "est_n")),
		Throttled:       int64(num(stats, "throttled")),
		UpdatedAt:       now,
	}
	s.Calibration = calibration(cal)
	if s.EstimateSamples > 0 {
		s.EstimateMeanAbsErr = num(stats, "est_abs") / float64(s.EstimateSamples)
		s.EstimateBias = num(stats, "est_rel") / float64(s.EstimateSamples)
	}
	if s.Tenants, err = l.Tenants(ctx, account); err != nil {
		return Snapshot{}, err
	}
	if s.Fair, err = l.fairStates(ctx, account, now, s.Tenants); err != nil {
		return Snapshot{}, err
	}
	s.RampFraction = parseFloat(res[5])
	s.Requests, s.Tokens = bucketState(res[6]), bucketState(res[7])
	_, seen := lim["seen"]
	s.Probing = !seen && l.cfg.Probe > 0 && s.Requests.Limit < 0 && s.Tokens.Limit < 0 && s.InFlight > 0
	return s, nil
}

// bucketState reads one bucket of snapshot.lua's reply: {limit, level,
// reset ms, source}, computed there by bucket.lua.
func bucketState(v any) BucketState {
	b, _ := v.([]any)
	if len(b) != 4 {
		return BucketState{Limit: -1, Source: "unknown"}
	}
	reset, _ := b[2].(int64)
	source, _ := b[3].(string)
	return BucketState{
		Limit:     int64(math.Round(parseFloat(b[0]))),
		Available: parseFloat(b[1]),
		ResetIn:   time.Duration(reset) * time.Millisecond,
		Source:    source,
	}
}

// parseFloat reads a number a script returned as a string, 0 when unreadable.
func parseFloat(v any) float64 {
	s, _ := v.(string)
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

// pairs turns an HGETALL reply into a map.
func pairs(v any) map[string]string {
	flat, _ := v.([]any)
	m := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		k, _ := flat[i].(string)
		val, _ := flat[i+1].(string)
		m[k] = val
	}
	return m
}

// num reads a numeric field, 0 when absent or unreadable.
func num(m map[string]string, field string) float64 {
	f, err := strconv.ParseFloat(m[field], 64)
	if err != nil {
		return 0
	}
	return f
}
