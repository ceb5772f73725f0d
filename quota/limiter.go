package quota

import (
	"cmp"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/promptq/promptq/internal/clock"
	"github.com/promptq/promptq/internal/keys"
	"github.com/redis/go-redis/v9"
)

// Defaults filled in by Config.WithDefaults.
const (
	ThresholdDefault      = 0.8
	ReservationTTLDefault = 10 * time.Minute
	BurstDefault          = 60 * time.Second
	RampCutDefault        = 0.5
	RampGrowthDefault     = 0.5
	RampIntervalDefault   = 15 * time.Minute
)

// RampMinFraction is the lowest fraction of its limits a slow_down ramp cuts
// an account to, however many slow_downs arrive: at the default growth it is
// back at the full limit within two hours.
const RampMinFraction = 0.05

// ReorderWindow is how far apart two requests' send times may be and still
// reach the provider in either order; the header sync (lua/settle.lua)
// treats an in-flight request sent up to this long before a response's own
// as possibly not yet seen by the provider. Send times are stamped in whole
// ms before the Redis round trip; the request then leaves after a goroutine
// wake-up (a scheduled one after the worker's 10ms ScheduleSlack) and an HTTP
// round trip whose start jitters by a few ms per process and host. Against
// the fake provider, two requests stamped 1ms apart from one process arrived
// reversed, which the old sync turned into a 429. 25ms covers the slack plus
// that jitter with room to spare, yet stays well under the gap between
// requests at the limits promptq runs at (200ms at 300 RPM, 50ms at 1200),
// so the window only matters for bursts of near-simultaneous sends.
const ReorderWindow = 25 * time.Millisecond

// dayTTL is how long a day's counters outlive their last write: long enough
// for `promptq status` to show yesterday, short enough not to pile up.
const dayTTL = 48 * time.Hour

// Config configures a Limiter. The zero value is usable: no configured caps,
// no daily budget, limits learned from the provider's headers.
type Config struct {
	// Clock tells the time that reaches the scripts. Default clock.Real{}.
	Clock clock.Clock
	// RPM and TPM are configured per-minute caps (0 = none). They cap learned
	// limits and are what the limiter serves before the first response.
	RPM, TPM int64
	// DailyRequests and DailyTokens are daily budgets (0 = none).
	DailyRequests, DailyTokens int64
	// Threshold is the fraction of a daily budget at which the account stops
	// for the day: 0 < Threshold <= 1. Default ThresholdDefault (0.8).
	Threshold float64
	// Location is the zone whose midnight starts a new budget day. Default UTC.
	Location *time.Location
	// ReservationTTL is how long a reservation may stay in flight before it
	// is dropped (its debit kept). Default ReservationTTLDefault (10m).
	ReservationTTL time.Duration
	// Burst is the capacity of a configured bucket, as refill time: RPM=600
	// with Burst=10s holds 100 requests. Learned limits always use 60s, as
	// OpenAI does. Default BurstDefault (60s); 1s to 1h.
	Burst time.Duration
	// Probe is how many reservations may be in flight while the account has
	// no known limit and no response has been settled yet, so a cold start
	// cannot burst past limits nobody has learned. Default ProbeDefault (1);
	// negative turns the probe off.
	Probe int
	// Schedule lets Reserve admit a request that fits within this long: its
	// cost is debited now (the buckets go into debt that refill pays back)
	// and Decision.Wait says how long to wait before sending. Waiters are
	// thus served first come, first served across every worker, with one
	// round trip each instead of polling. Default 0: no scheduling.
	Schedule time.Duration
	// RampCut is the factor SlowDown multiplies the account's current
	// fraction of its limits by: 0 < RampCut < 1. Default RampCutDefault (0.5).
	RampCut float64
	// RampGrowth is how much the fraction may grow per RampInterval after a
	// slow_down, compounded, until it is back at 1: 0 < RampGrowth <= 10.
	// Default RampGrowthDefault (0.5, +50%, OpenAI's guidance).
	RampGrowth float64
	// RampInterval is the period of RampGrowth: 1s to 24h. Default
	// RampIntervalDefault (15m).
	RampInterval time.Duration
	// NoFairShare turns weighted fair sharing between tenants off (see
	// FairSlack): headroom then goes to whoever asks first. Set it alike on
	// every worker of an account.
	NoFairShare bool
}

// ProbeDefault is Config.Probe's default.
const ProbeDefault = 1

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	c.Threshold = cmp.Or(c.Threshold, ThresholdDefault)
	c.Location = cmp.Or(c.Location, time.UTC)
	c.ReservationTTL = cmp.Or(c.ReservationTTL, ReservationTTLDefault)
	c.Burst = cmp.Or(c.Burst, BurstDefault)
	c.Probe = cmp.Or(c.Probe, ProbeDefault)
	c.RampCut = cmp.Or(c.RampCut, RampCutDefault)
	c.RampGrowth = cmp.Or(c.RampGrowth, RampGrowthDefault)
	c.RampInterval = cmp.Or(c.RampInterval, RampIntervalDefault)
	return c
}

// Validate reports the first field that is out of range. Call it on a
// config that went through WithDefaults.
func (c Config) Validate() error {
	switch {
	case c.Clock == nil:
		return errors.New("quota: Clock must be set")
	case c.Location == nil:
		return errors.New("quota: Location must be set")
	case c.RPM < 0:
		return fmt.Errorf("quota: RPM %d: must be >= 0 (0 = no cap)", c.RPM)
	case c.TPM < 0:
		return fmt.Errorf("quota: TPM %d: must be >= 0 (0 = no cap)", c.TPM)
	case c.DailyRequests < 0:
		return fmt.Errorf("quota: DailyRequests %d: must be >= 0 (0 = no budget)", c.DailyRequests)
	case c.DailyTokens < 0:
		return fmt.Errorf("quota: DailyTokens %d: must be >= 0 (0 = no budget)", c.DailyTokens)
	case !(c.Threshold > 0 && c.Threshold <= 1):
		return fmt.Errorf("quota: Threshold %v: must be in (0, 1]", c.Threshold)
	case c.ReservationTTL < time.Second || c.ReservationTTL > 24*time.Hour:
		return fmt.Errorf("quota: ReservationTTL %v: must be between 1s and 24h", c.ReservationTTL)
	case c.Schedule < 0 || c.Schedule > time.Hour:
		return fmt.Errorf("quota: Schedule must be between 0 and 1h, got %v", c.Schedule)
	case c.Burst < time.Second || c.Burst > time.Hour:
		return fmt.Errorf("quota: Burst %v: must be between 1s and 1h", c.Burst)
	case !(c.RampCut > 0 && c.RampCut < 1):
		return fmt.Errorf("quota: RampCut %v: must be in (0, 1)", c.RampCut)
	case !(c.RampGrowth > 0 && c.RampGrowth <= 10):
		return fmt.Errorf("quota: RampGrowth %v: must be in (0, 10]", c.RampGrowth)
	case c.RampInterval < time.Second || c.RampInterval > 24*time.Hour:
		return fmt.Errorf("quota: RampInterval %v: must be between 1s and 24h", c.RampInterval)
	}
	return nil
}

// Cost is what one request counts against the provider's limits at
// admission: OpenAI counts 1 request and input tokens + max_output_tokens.
type Cost struct {
	Requests, Tokens int64
}

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

// Input is what is known of a request's input before it is sent: the two
// bases from which the limiter estimates the input tokens the provider will
// charge (see ReserveRequest).
type Input struct {
	// Chars is ceil(characters/4) of everything sent (instructions and every
	// message), plus framing per message: OpenAI's documented estimate.
	Chars int64
	// Tokens is the model's tokenizer count of the same, plus framing per
	// message; 0 when no tokenizer is known for the model.
	Tokens int64
}

// Initial is the estimate before anything is learned: the larger basis.
func (in Input) Initial() int64 { return max(in.Chars, in.Tokens) }

// Reservation is an admitted request's claim on the buckets. Pass it to
// exactly one of Settle or Refund when the provider has answered.
type Reservation struct {
	Account        string
	Tenant         string // the producer inside the account (WithTenant); "" = none
	ID             string
	Cost           Cost
	At             time.Time // when it may be sent: admission time plus any scheduled wait (ms precision)
	EstimatedInput int64     // input tokens estimated before the call (0 = no estimate)
	Input          Input     // the bases of the estimate (ReserveRequest), for calibration
}

// sentMember is the reservation's entry in the sent set (calib.lua):
// id:chars:tokens:max_output.
func (r Reservation) sentMember() string {
	in := r.Input
	if in == (Input{}) {
		in = Input{Chars: r.EstimatedInput, Tokens: r.EstimatedInput}
	}
	return r.ID + ":" + strconv.FormatInt(in.Chars, 10) + ":" + strconv.FormatInt(max(in.Tokens, 0), 10) + ":" +
		strconv.FormatInt(max(0, r.Cost.Tokens-r.EstimatedInput), 10)
}

// member is the reservation's entry in the in-flight set: id:requests:tokens:at_ms.
func (r Reservation) member() string {
	return r.memberPrefix() + ":" + strconv.FormatInt(r.Cost.Tokens, 10) + ":" + strconv.FormatInt(r.At.UnixMilli(), 10)
}

// memberPrefix is the member without its token cost and time, which
// reserve.lua appends.
func (r Reservation) memberPrefix() string {
	return r.ID + ":" + strconv.FormatInt(r.Cost.Requests, 10)
}

// Decision is Reserve's answer.
type Decision struct {
	// OK means the request is admitted; Reservation is then valid. With
	// Config.Schedule, Wait may be > 0: send only after waiting that long.
	OK          bool
	Reservation Reservation
	// Wait is, when !OK and neither paused nor exhausted, how long until the
	// cost fits (if nobody else takes the capacity first); when OK, how long
	// to wait before sending (0 without scheduling).
	Wait time.Duration
	// Paused means a pause record is active; PausedUntil is its end (zero =
	// indefinite, until someone resumes the account).
	Paused      bool
	PausedUntil time.Time
	// DailyExhausted means the daily budget threshold is crossed; the budget
	// resets at DailyResetAt, the next midnight in Config.Location.
	DailyExhausted bool
	DailyResetAt   time.Time
	// TenantLimited means, when !OK, that the tenant's budget (WithTenant),
	// not the account's headroom, is what holds the request back for Wait.
	TenantLimited bool
	// Probe means, when !OK, that the cold-start probe holds the request:
	// no limit is known, Config.Probe reservations are in flight and no
	// response has been settled yet.
	Probe bool
	// ModelPaused means the account is paused for the request's model
	// alone (WithModel) until PausedUntil (zero = indefinite).
	ModelPaused bool
	// FairShare means, when !OK, that the request would have taken a
	// scheduled turn while another tenant with pending work is behind its
	// weighted share (see FairSlack): ask again after Wait.
	FairShare bool
}

// ReserveOption varies one Reserve call.
type ReserveOption func(*reserveOptions)

type reserveOptions struct {
	tenant   string
	model    string
	schedule time.Duration // > 0: at most this scheduled wait (below Config.Schedule)
}

// WithTenant names the producer inside the account that the request is for.
// If the tenant has a budget (SetTenantBudget), Reserve holds the request to
// it as well as to the account's limits. Whatever their budgets, tenants
// with pending work share the account's headroom by weight when it is
// short (see FairSlack); requests without a tenant count as one tenant "".
func WithTenant(tenant string) ReserveOption {
	return func(o *reserveOptions) { o.tenant = tenant }
}

// WithModel names the request's model: an account paused for that model
// alone (pausegate.Gate.PauseModel, after a model_not_found in a pool)
// refuses it (Decision.ModelPaused).
func WithModel(model string) ReserveOption {
	return func(o *reserveOptions) { o.model = model }
}

// WithScheduleLimit admits the request on schedule only if its turn is at
// most d away, when that is sooner than Config.Schedule: a pool routes a
// request to one account because another's turn was later, and a turn
// further away than that is no better.
func WithScheduleLimit(d time.Duration) ReserveOption {
	return func(o *reserveOptions) { o.schedule = max(d, time.Millisecond) }
}

// TenantBudget is one tenant's share of an account (0 = no budget of that kind).
type TenantBudget struct {
	RPM           int64 `json:"rpm,omitempty"`            // requests per minute
	TPM           int64 `json:"tpm,omitempty"`            // tokens per minute
	DailyRequests int64 `json:"daily_requests,omitempty"` // requests per budget day (Config.Location)
	// Weight is the tenant's share of the account's headroom against other
	// tenants with pending work, when the headroom is short (0 = 1; at most
	// MaxTenantWeight): weights 3 and 1 split it 3:1.
	Weight int64 `json:"weight,omitempty"`
}

// MaxTenantWeight is the largest TenantBudget.Weight.
const MaxTenantWeight = 1000

// BudgetError is a TenantBudget that Validate refuses. Field is the JSON
// name of the offending field ("" when the budget as a whole is empty).
type BudgetError struct {
	Field, Msg string
}

func (e *BudgetError) Error() string { return "quota: tenant budget: " + e.Msg }

// Validate checks b: no negative value, Weight at most MaxTenantWeight, and
// at least one value set. It returns a *BudgetError.
func (b TenantBudget) Validate() error {
	for _, f := range []struct {
		name string
		v    int64
	}{{"rpm", b.RPM}, {"tpm", b.TPM}, {"daily_requests", b.DailyRequests}} {
		if f.v < 0 {
			return &BudgetError{f.name, fmt.Sprintf("%s %d: must be >= 0 (0 = no such budget)", f.name, f.v)}
		}
	}
	if b.Weight < 0 || b.Weight > MaxTenantWeight {
		return &BudgetError{"weight", fmt.Sprintf("weight %d: must be between 0 (= 1) and %d", b.Weight, MaxTenantWeight)}
	}
	if b == (TenantBudget{}) {
		return &BudgetError{"", "empty budget: set at least one of rpm, tpm, daily_requests, weight (or delete the tenant)"}
	}
	return nil
}

// ErrCostExceedsLimit is returned by Reserve for a cost that can never fit:
// more tokens (or requests) than the bucket holds when full.
var ErrCostExceedsLimit = errors.New("quota: request cost exceeds the account's limit")

//go:embed lua/bucket.lua
var bucketLua string

//go:embed lua/reserve.lua
var reserveLua string

//go:embed lua/settle.lua
var settleLua string

//go:embed lua/snapshot.lua
var snapshotLua string

//go:embed lua/throttle.lua
var throttleLua string

//go:embed lua/slowdown.lua
var slowdownLua string

//go:embed lua/tenant_set.lua
var tenantSetLua string

//go:embed lua/tenant_state.lua
var tenantStateLua string

//go:embed lua/fair_state.lua
var fairStateLua string

//go:embed lua/calib.lua
var calibLua string

//go:embed lua/estimate.lua
var estimateLua string

var (
	reserveScript     = redis.NewScript(bucketLua + calibLua + reserveLua)
	settleScript      = redis.NewScript(bucketLua + calibLua + settleLua)
	estimateScript    = redis.NewScript(calibLua + estimateLua)
	snapshotScript    = redis.NewScript(snapshotLua)
	throttleScript    = redis.NewScript(throttleLua)
	slowdownScript    = redis.NewScript(bucketLua + slowdownLua)
	tenantSetScript   = redis.NewScript(tenantSetLua)
	tenantStateScript = redis.NewScript(tenantStateLua)
	fairStateScript   = redis.NewScript(fairStateLua)
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

// fairGrace is FairGrace, or 0 (no fair sharing) with Config.NoFairShare.
func (l *Limiter) fairGrace() time.Duration {
	if l.cfg.NoFairShare {
		return 0
	}
	return FairGrace
}

// date is the budget day of t: YYYY-MM-DD in the configured zone.
func (l *Limiter) date(t time.Time) string { return t.In(l.cfg.Location).Format(time.DateOnly) }

// nextMidnight is the start of the budget day after t's.
func (l *Limiter) nextMidnight(t time.Time) time.Time {
	t = t.In(l.cfg.Location)
	y, m, d := t.Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, l.cfg.Location)
}

// dailyStop is the used amount at which a budget stops admitting (0 = no budget).
func (l *Limiter) dailyStop(budget int64) int64 {
	if budget <= 0 {
		return 0
	}
	// A tiny epsilon keeps 0.8*100 from landing on 79.999...
	return max(1, int64(math.Floor(l.cfg.Threshold*float64(budget)+1e-9)))
}

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

// Estimate returns the input tokens ReserveRequest would reserve for in now,
// under what the account's calibration has learned so far.
func (l *Limiter) Estimate(ctx context.Context, account string, in Input) (int64, error) {
	if err := keys.ValidateAccount(account); err != nil {
		return 0, fmt.Errorf("quota: %w", err)
	}
	n, err := estimateScript.RunRO(ctx, l.rdb, []string{keys.Calib(account)}, in.Chars, in.Tokens).Int64()
	if err != nil {
		return 0, fmt.Errorf("quota: estimate %s: %w", account, err)
	}
	return n, nil
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

// Sync applies the headers of a response that has only begun (a stream
// that just opened) to the shared buckets at once, keeping r in flight for
// the Settle or Refund that follows when the stream ends.
func (l *Limiter) Sync(ctx context.Context, r Reservation, info HeaderInfo) error {
	return l.settle(ctx, "sync", r, info, 0, 0, 0)
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
	err := settleScript.Run(ctx, l.rdb,
		[]string{keys.Limits(r.Account), keys.Inflight(r.Account), keys.Day(r.Account, l.date(r.At)), keys.Stats(r.Account),
			keys.Tenants(r.Account), keys.Tenant(r.Account, r.Tenant), keys.Calib(r.Account), keys.Sent(r.Account)},
		clock.ScriptNow(l.cfg.Clock), mode, r.member(), r.Cost.Requests, r.Cost.Tokens, r.At.UnixMilli(),
		charged, total, r.EstimatedInput, input,
		l.cfg.RPM, l.cfg.TPM, l.cfg.Burst.Milliseconds(),
		known(info.Requests.Limit), known(info.Requests.Remaining),
		known(info.Tokens.Limit), known(info.Tokens.Remaining),
		inferLimit(info.Requests), inferLimit(info.Tokens),
		dayTTL.Milliseconds(), resetMs(info.Requests), resetMs(info.Tokens),
		ReorderWindow.Milliseconds(), r.Tenant, l.date(r.At), TenantBurst.Milliseconds(),
		r.sentMember(), boolArg(bad),
	).Err()
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

// SlowDown cuts account's admitted rate after the provider answered
// slow_down (a 503 asking to reduce the request rate and then ramp up
// slowly): the fraction of its limits the account may use drops to
// Config.RampCut times the current one (never below RampMinFraction), then
// grows by Config.RampGrowth per Config.RampInterval back to 1. Reserve and
// Settle apply the fraction to both the request and the token limit.
func (l *Limiter) SlowDown(ctx context.Context, account string) error {
	if err := keys.ValidateAccount(account); err != nil {
		return fmt.Errorf("quota: %w", err)
	}
	err := slowdownScript.Run(ctx, l.rdb, []string{keys.Limits(account)},
		clock.ScriptNow(l.cfg.Clock), l.cfg.RampCut, l.cfg.RampGrowth, l.cfg.RampInterval.Milliseconds(), RampMinFraction,
		SlowDownCooldown.Milliseconds(),
	).Err()
	if err != nil {
		return fmt.Errorf("quota: slow down %s: %w", account, err)
	}
	return nil
}

// SlowDownCooldown groups slow_downs into one incident: several workers
// answered 503 slow_down for the same burst, and cutting once per answer
// would drive the rate to the floor (seen in the bench: 6 answers cut it to
// 0.5^6). A slow_down this long after the last cut cuts again.
const SlowDownCooldown = 10 * time.Second

// TenantBurst is the capacity of a tenant's buckets, as refill time: a
// tenant capped at 600 requests/min holds 50 requests, so its cap binds
// within seconds instead of after a minute of the account's full rate.
const TenantBurst = 5 * time.Second

// Weighted fair sharing between the tenants of an account (lua/reserve.lua).
// Each tenant has a virtual time: the account capacity its admitted requests
// used (a request costs the larger of its share of the request rate and of
// the token rate, as ms of that rate) divided by its weight. When the
// account has headroom now, every request is admitted, so no capacity
// idles; a request that would take a scheduled turn (Config.Schedule) is
// refused with Decision.FairShare while its tenant is more than FairSlack
// ahead of another tenant with pending work, so tenants that keep asking
// get the short headroom in proportion to their weights, whatever their
// number of workers or the size of their requests (as long as a request
// fits within Config.Schedule of the account's rate). Fair sharing decides
// scheduled turns only: a Limiter without scheduling (Config.Schedule 0)
// admits first come, first served.
const (
	// FairGrace is how long a tenant keeps counting as having pending work
	// after its last request waiting for headroom (a scheduled turn or a
	// refusal's wait) ends. It covers the time until a tenant with a
	// backlog asks again: its worker's call and the next task's start. A
	// tenant whose calls take longer, or that has no more work, drops out
	// after it, and the others stop yielding to it.
	FairGrace = 3 * time.Second
	// FairSlack is how far ahead (in ms of account capacity, divided by
	// weight) a tenant may run before it yields scheduled turns.
	FairSlack = 500 * time.Millisecond
	// FairMaxLag is how far behind the others a tenant with pending work
	// that uses little may fall: the most credit it can bank. It must be
	// well over FairSlack, or a tenant that is behind would be raised to
	// within the slack at each request and the others would never yield.
	// A tenant whose pending work ended starts level with the others.
	FairMaxLag = 2 * time.Second
	// FairRetry is the shortest Wait of a FairShare refusal: a tenant that
	// yields asks again no sooner, so its workers do not all ask the moment
	// the next unit of headroom is due.
	FairRetry = 250 * time.Millisecond
)

// SetTenantBudget sets (or replaces) tenant's budget inside account. It
// takes effect at the next Reserve on any worker; the tenant's use so far
// is kept, so lowering a budget holds back a tenant that already used more.
func (l *Limiter) SetTenantBudget(ctx context.Context, account, tenant string, b TenantBudget) error {
	if err := b.Validate(); err != nil {
		return err
	}
	raw, err := json.Marshal(b)
	if err != nil {
		return err
	}
	_, err = l.setTenant(ctx, account, tenant, string(raw))
	return err
}

// DeleteTenant removes tenant's budget and levels from account: the tenant
// then shares the account's headroom freely. It reports whether the tenant
// had a budget.
func (l *Limiter) DeleteTenant(ctx context.Context, account, tenant string) (bool, error) {
	return l.setTenant(ctx, account, tenant, "")
}

func (l *Limiter) setTenant(ctx context.Context, account, tenant, raw string) (bool, error) {
	if err := keys.ValidateAccount(account); err != nil {
		return false, fmt.Errorf("quota: %w", err)
	}
	if err := keys.ValidateTenant(tenant); err != nil {
		return false, fmt.Errorf("quota: %w", err)
	}
	existed, err := tenantSetScript.Run(ctx, l.rdb, []string{keys.Tenants(account), keys.Tenant(account, tenant)}, tenant, raw).Int64()
	if err != nil {
		return false, fmt.Errorf("quota: tenant %s/%s: %w", account, tenant, err)
	}
	return existed == 1, nil
}

// resetMs is a bucket's reset in ms, -1 when unknown.
func resetMs(b Bucket) int64 {
	if b.Reset < 0 {
		return -1
	}
	return b.Reset.Milliseconds()
}

// known maps every negative (unknown) header value to -1.
func known(v int64) int64 { return max(v, -1) }

// inferLimit derives a per-minute limit from remaining and reset when the
// limit header is missing: a bucket refilling limit/60s that is full after
// reset holds remaining = limit*(60s-reset)/60s. -1 when it cannot tell.
func inferLimit(b Bucket) int64 {
	if b.Limit > 0 || b.Remaining <= 0 || b.Reset <= 0 || b.Reset >= time.Minute {
		return -1
	}
	return int64(math.Round(float64(b.Remaining) * float64(time.Minute) / float64(time.Minute-b.Reset)))
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
