package quota

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
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

// Calibration is what the limiter learned of how the provider counts a
// request's input (see "Cost calibration" in the package doc).
type Calibration struct {
	// Source is where the samples came from: "headers" (remaining tokens
	// between responses), "usage" (a provider without rate-limit headers)
	// or "" (nothing learned yet: the larger basis is reserved).
	Source string
	// Basis is the estimate's basis in force: "chars" (characters/4 plus
	// framing), "tokens" (the tokenizer's count plus framing) or "" (none
	// yet: the larger of the two).
	Basis string
	// Factor multiplies the basis: the upper quantile of the charge/basis
	// ratios in the ring (0 = none yet).
	Factor float64
	// Spread is the ring's (q90 - q10) / median on the basis in force: how
	// well the basis predicts the charge (0 = exactly).
	Spread float64
	// Ring is how many samples the ring holds now (at most CalibrationRing);
	// Samples how many were taken in all.
	Ring, Samples int64
	// Bad counts accounting signals refused as absurd (remaining above the
	// limit, a charge far above the estimate, negative usage); Missing
	// counts responses without a remaining-tokens figure. Neither moves the
	// estimate or raises a level.
	Bad, Missing int64
}

// CalibrationRing is how many recent samples the calibration keeps (the
// CAL_RING of lua/calib.lua).
const CalibrationRing = 24

// FairState is one tenant's place in weighted fair sharing (see FairSlack).
type FairState struct {
	Tenant string `json:"tenant"` // "" = requests without a tenant
	Weight int64  `json:"weight"`
	// PendingUntil is when its pending work ends unless it asks again.
	PendingUntil time.Time `json:"pending_until"`
	// Lead is how far the tenant is ahead of the tenant with pending work
	// that is furthest behind, in account capacity divided by weight. Over
	// FairSlack, the tenant yields its scheduled turns to the others.
	Lead time.Duration `json:"lead_ns"`
}

// Yielding reports whether the tenant's requests are refused scheduled
// turns (Decision.FairShare) for now.
func (f FairState) Yielding() bool { return f.Lead > FairSlack }

// TenantState is one tenant's budget and use, for `promptq status` and
// `promptq tenant list`.
type TenantState struct {
	Tenant string       `json:"tenant"`
	Budget TenantBudget `json:"budget"`
	// Requests and Tokens are what the tenant could reserve now under its
	// RPM and TPM budgets (negative = in debt); 0 for a kind without budget.
	Requests float64 `json:"requests_available"`
	Tokens   float64 `json:"tokens_available"`
	// DailyRequests is the tenant's requests today (including in flight).
	DailyRequests int64 `json:"daily_requests_used"`
}

// BucketState is one rate bucket as the limiter sees it now.
type BucketState struct {
	Limit     int64         // per-minute limit in force (learned, capped by config); -1 unknown
	Available float64       // units that could be reserved now (negative = in debt)
	ResetIn   time.Duration // until the bucket is full again
	Source    string        // "headers", "config", "ramp" (a slow_down ramp is in force) or "unknown"
}

// DailyState is today's budget use.
type DailyState struct {
	Date                     string // YYYY-MM-DD in Config.Location
	Requests, Tokens         int64  // used today, including reservations in flight
	RequestLimit, TokenLimit int64  // configured budgets (0 = none)
	Threshold                float64
	ResetAt                  time.Time // next midnight in Config.Location
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
		now.UnixMilli()).Slice()
	if err != nil {
		return Snapshot{}, fmt.Errorf("quota: snapshot %s: %w", account, err)
	}
	if len(res) != 5 {
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
	elapsed := max(0, float64(now.UnixMilli())-num(lim, "ts"))
	if _, ok := lim["ts"]; !ok {
		elapsed = 0
	}
	if s.Tenants, err = l.Tenants(ctx, account); err != nil {
		return Snapshot{}, err
	}
	if s.Fair, err = l.fairStates(ctx, account, now, s.Tenants); err != nil {
		return Snapshot{}, err
	}
	s.RampFraction = rampFraction(lim, now.UnixMilli())
	s.Requests = l.bucketState(lim, "r", l.cfg.RPM, elapsed, s.RampFraction)
	s.Tokens = l.bucketState(lim, "t", l.cfg.TPM, elapsed, s.RampFraction)
	_, seen := lim["seen"]
	s.Probing = !seen && l.cfg.Probe > 0 && s.Requests.Limit < 0 && s.Tokens.Limit < 0 && s.InFlight > 0
	return s, nil
}

// Tenants returns the budgets of account's tenants and their use now, sorted
// by name.
func (l *Limiter) Tenants(ctx context.Context, account string) ([]TenantState, error) {
	if err := keys.ValidateAccount(account); err != nil {
		return nil, fmt.Errorf("quota: %w", err)
	}
	res, err := tenantStateScript.RunRO(ctx, l.rdb, []string{keys.Tenants(account)}).Slice()
	if err != nil || len(res) != 1 {
		return nil, fmt.Errorf("quota: tenants %s: %v", account, err)
	}
	budgets := pairs(res[0])
	if len(budgets) == 0 {
		return nil, nil
	}
	names := make([]string, 0, len(budgets))
	for t := range budgets {
		names = append(names, t)
	}
	sort.Strings(names)
	ks := []string{keys.Tenants(account)}
	for _, t := range names {
		ks = append(ks, keys.Tenant(account, t))
	}
	// A second read gets budgets and levels in one consistent view.
	now := l.cfg.Clock.Now()
	if res, err = tenantStateScript.RunRO(ctx, l.rdb, ks).Slice(); err != nil || len(res) != len(ks) {
		return nil, fmt.Errorf("quota: tenants %s: %v", account, err)
	}
	budgets = pairs(res[0])
	out := make([]TenantState, 0, len(names))
	for i, t := range names {
		raw, ok := budgets[t]
		if !ok {
			continue // deleted between the two reads
		}
		var b TenantBudget
		if err := json.Unmarshal([]byte(raw), &b); err != nil {
			return nil, fmt.Errorf("quota: tenant %s/%s: bad budget %q: %w", account, t, raw, err)
		}
		h := pairs(res[i+1])
		elapsed := 0.0
		if _, ok := h["ts"]; ok {
			elapsed = max(0, float64(now.UnixMilli())-num(h, "ts"))
		}
		st := TenantState{Tenant: t, Budget: b,
			Requests: l.tenantLevel(h, "rlvl", b.RPM, elapsed), Tokens: l.tenantLevel(h, "tlvl", b.TPM, elapsed)}
		if h["day"] == l.date(now) {
			st.DailyRequests = int64(num(h, "dreq"))
		}
		out = append(out, st)
	}
	return out, nil
}

// fairStates reads the tenants with pending work; ts gives the weights.
func (l *Limiter) fairStates(ctx context.Context, account string, now time.Time, ts []TenantState) ([]FairState, error) {
	res, err := fairStateScript.RunRO(ctx, l.rdb, []string{keys.FairSeen(account), keys.FairVT(account)},
		now.UnixMilli()).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("quota: fair share %s: %w", account, err)
	}
	weight := map[string]int64{}
	for _, t := range ts {
		weight[t.Tenant] = t.Budget.Weight
	}
	var out []FairState
	var vts []float64
	low := math.Inf(1)
	for i := 0; i+2 < len(res); i += 3 {
		until, _ := strconv.ParseFloat(res[i+1], 64)
		vt, err := strconv.ParseFloat(res[i+2], 64)
		if err != nil {
			continue // pending, but its virtual time is gone (expired)
		}
		out = append(out, FairState{Tenant: res[i], Weight: max(1, weight[res[i]]), PendingUntil: time.UnixMilli(int64(until))})
		vts = append(vts, vt)
		low = min(low, vt)
	}
	for i := range out {
		out[i].Lead = time.Duration((vts[i] - low) * float64(time.Millisecond))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tenant < out[j].Tenant })
	return out, nil
}

// tenantLevel mirrors a tenant bucket's refill in lua/reserve.lua.
func (l *Limiter) tenantLevel(h map[string]string, field string, perMinute int64, elapsedMs float64) float64 {
	if perMinute <= 0 {
		return 0
	}
	capacity := float64(perMinute) * float64(TenantBurst.Milliseconds()) / 60000
	if _, ok := h[field]; !ok {
		return capacity
	}
	return min(capacity, num(h, field)+elapsedMs*float64(perMinute)/60000)
}

// rampFraction mirrors ramp_fraction in lua/bucket.lua.
func rampFraction(lim map[string]string, nowMs int64) float64 {
	for _, f := range []string{"ramp_f", "ramp_ts", "ramp_g", "ramp_iv"} {
		if _, ok := lim[f]; !ok {
			return 1
		}
	}
	iv := num(lim, "ramp_iv")
	if iv <= 0 {
		return 1
	}
	dt := max(0, float64(nowMs)-num(lim, "ramp_ts"))
	return min(1, num(lim, "ramp_f")*math.Pow(1+num(lim, "ramp_g"), dt/iv))
}

// bucketState mirrors shape, ramp_shape and refill in lua/bucket.lua.
func (l *Limiter) bucketState(lim map[string]string, p string, cfg int64, elapsedMs float64, ramp float64) BucketState {
	learned := int64(num(lim, p+"lim"))
	var limit float64
	var capacity float64
	var source string
	switch {
	case learned > 0 && (cfg <= 0 || learned <= cfg):
		limit, capacity, source = float64(learned), float64(learned), "headers"
		if c := num(lim, p+"capl"); c > 0 && c < capacity {
			capacity = c
		}
	case cfg > 0:
		limit, capacity, source = float64(cfg), float64(cfg)*float64(l.cfg.Burst.Milliseconds())/60000, "config"
	default:
		return BucketState{Limit: -1, Source: "unknown"}
	}
	if ramp < 1 {
		limit *= ramp
		capacity = limit * float64(l.cfg.Burst.Milliseconds()) / 60000
		if c := num(lim, p+"capl"); c > 0 && capacity > c*ramp {
			capacity = c * ramp
		}
		source = "ramp"
	}
	rate := limit / 60000
	level := capacity
	if _, ok := lim[p+"lvl"]; ok {
		level = min(capacity, num(lim, p+"lvl")+elapsedMs*rate)
	}
	resetMs := math.Ceil((capacity - level) / rate)
	return BucketState{
		Limit:     int64(math.Round(limit)),
		Available: level,
		ResetIn:   time.Duration(resetMs) * time.Millisecond,
		Source:    source,
	}
}

// calibration reads the calib hash (fields: see lua/calib.lua).
func calibration(h map[string]string) Calibration {
	c := Calibration{Source: h["src"], Samples: int64(num(h, "n")), Bad: int64(num(h, "bad")), Missing: int64(num(h, "missing"))}
	ring := "rc"
	switch h["basis"] {
	case "c":
		c.Basis, c.Factor, c.Spread = "chars", num(h, "kc"), num(h, "sc")
	case "t":
		c.Basis, c.Factor, c.Spread, ring = "tokens", num(h, "kt"), num(h, "st"), "rt"
	}
	if r := h[ring]; r != "" {
		c.Ring = int64(strings.Count(r, ",") + 1)
	}
	return c
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
