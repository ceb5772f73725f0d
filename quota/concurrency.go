package quota

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/clock"
	"github.com/promptq/promptq/internal/keys"
)

// Defaults filled in by ConcurrencyConfig.WithDefaults.
const (
	ConcurrencyMinDefault              = 1
	ConcurrencyMaxDefault              = 1000
	ConcurrencyInitialDefault          = 4
	ConcurrencyLeaseDefault            = 2 * time.Minute
	ConcurrencyIncreaseEveryDefault    = 2 * time.Second
	ConcurrencyDecreaseFactorDefault   = 0.7
	ConcurrencyDecreaseCooldownDefault = 2 * time.Second
	ConcurrencyLatencyRiseDefault      = 2.0
)

// concurrencyStateTTL is how long an account's learned limit outlives its
// last release. After a day without traffic the provider's condition is
// unknown again, so the account starts over at Initial.
const concurrencyStateTTL = 24 * time.Hour

// concurrencyMaxLimit bounds ConcurrencyConfig.Max.
const concurrencyMaxLimit = 100_000

// ConcurrencyConfig configures a Concurrency. The zero value is usable.
type ConcurrencyConfig struct {
	// Clock tells the time that reaches the scripts. Default clock.Real{}.
	Clock clock.Clock
	// Min and Max bound the cluster-wide number of requests in flight.
	// Defaults ConcurrencyMinDefault (1) and ConcurrencyMaxDefault (1000);
	// 1 <= Min <= Max <= 100000.
	Min, Max int
	// Initial is the limit an account starts at, before any feedback.
	// Default ConcurrencyInitialDefault (4), clamped into [Min, Max].
	Initial int
	// Lease is how long a permit lasts unless released: a dead worker's
	// permits come back after it. Keep it above the provider call timeout,
	// or a slow call's permit is handed out twice. Default
	// ConcurrencyLeaseDefault (2m); 1s to 24h.
	Lease time.Duration
	// IncreaseEvery is the additive increase: while healthy the limit grows
	// by 1 at most once per this interval, cluster-wide. Default
	// ConcurrencyIncreaseEveryDefault (2s); 10ms to 1h.
	IncreaseEvery time.Duration
	// DecreaseFactor multiplies the limit on an overload signal. Default
	// ConcurrencyDecreaseFactorDefault (0.7); in (0, 1).
	DecreaseFactor float64
	// DecreaseCooldown is the least time between two decreases, so a burst
	// of 429s from one overload cuts once. Default
	// ConcurrencyDecreaseCooldownDefault (2s); 1ms to 1h.
	DecreaseCooldown time.Duration
	// LatencyRise: a success slower than this multiple of the smoothed
	// latency baseline counts as an overload signal. Default
	// ConcurrencyLatencyRiseDefault (2.0); must be > 1, or negative to turn
	// the latency signal off (0 means "default", as for every field).
	LatencyRise float64
}

// WithDefaults returns c with zero fields set to their defaults.
func (c ConcurrencyConfig) WithDefaults() ConcurrencyConfig {
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	c.Min = cmp.Or(c.Min, ConcurrencyMinDefault)
	c.Max = cmp.Or(c.Max, max(ConcurrencyMaxDefault, c.Min))
	c.Initial = cmp.Or(c.Initial, min(max(ConcurrencyInitialDefault, c.Min), c.Max))
	c.Lease = cmp.Or(c.Lease, ConcurrencyLeaseDefault)
	c.IncreaseEvery = cmp.Or(c.IncreaseEvery, ConcurrencyIncreaseEveryDefault)
	c.DecreaseFactor = cmp.Or(c.DecreaseFactor, ConcurrencyDecreaseFactorDefault)
	c.DecreaseCooldown = cmp.Or(c.DecreaseCooldown, ConcurrencyDecreaseCooldownDefault)
	c.LatencyRise = cmp.Or(c.LatencyRise, ConcurrencyLatencyRiseDefault)
	return c
}

// Validate reports the first field that is out of range. Call it on a
// config that went through WithDefaults.
func (c ConcurrencyConfig) Validate() error {
	switch {
	case c.Clock == nil:
		return errors.New("quota: concurrency: Clock must be set")
	case c.Min < 1 || c.Min > concurrencyMaxLimit:
		return fmt.Errorf("quota: concurrency: Min %d: must be between 1 and %d", c.Min, concurrencyMaxLimit)
	case c.Max < c.Min || c.Max > concurrencyMaxLimit:
		return fmt.Errorf("quota: concurrency: Max %d: must be between Min (%d) and %d", c.Max, c.Min, concurrencyMaxLimit)
	case c.Initial < c.Min || c.Initial > c.Max:
		return fmt.Errorf("quota: concurrency: Initial %d: must be between Min (%d) and Max (%d)", c.Initial, c.Min, c.Max)
	case c.Lease < time.Second || c.Lease > 24*time.Hour:
		return fmt.Errorf("quota: concurrency: Lease %v: must be between 1s and 24h", c.Lease)
	case c.IncreaseEvery < 10*time.Millisecond || c.IncreaseEvery > time.Hour:
		return fmt.Errorf("quota: concurrency: IncreaseEvery %v: must be between 10ms and 1h", c.IncreaseEvery)
	case !(c.DecreaseFactor > 0 && c.DecreaseFactor < 1):
		return fmt.Errorf("quota: concurrency: DecreaseFactor %v: must be in (0, 1)", c.DecreaseFactor)
	case c.DecreaseCooldown < time.Millisecond || c.DecreaseCooldown > time.Hour:
		return fmt.Errorf("quota: concurrency: DecreaseCooldown %v: must be between 1ms and 1h", c.DecreaseCooldown)
	case c.LatencyRise >= 0 && c.LatencyRise <= 1:
		return fmt.Errorf("quota: concurrency: LatencyRise %v: must be > 1 (or negative = off)", c.LatencyRise)
	}
	return nil
}

// Permit is one slot of an account's concurrency limit. Pass it to Release
// exactly once when the provider call is over.
type Permit struct {
	Account  string
	ID       string
	Acquired time.Time // ms precision, as the script recorded it
}

// LoadSignal is what one provider call says about the provider's load; it
// moves the adaptive concurrency limit on Release.
type LoadSignal int

const (
	// LoadNone is no signal: a 4xx that is not a rate limit, a
	// cancelled call, a local error. The zero value, so a forgotten outcome
	// never grows the limit.
	LoadNone LoadSignal = iota
	// LoadHealthy is an answer from a healthy provider. It may grow the
	// limit, or shrink it if its latency rose (see LatencyRise).
	LoadHealthy
	// LoadOverload is a sign the provider is overloaded: 429
	// (rate_limit, slow_down) or a 5xx. It shrinks the limit.
	LoadOverload
)

// String names the signal.
func (s LoadSignal) String() string {
	switch s {
	case LoadNone:
		return "none"
	case LoadHealthy:
		return "healthy"
	case LoadOverload:
		return "overload"
	}
	return fmt.Sprintf("LoadSignal(%d)", int(s))
}

var (
	semAcquireScript = compose("now", "sem_acquire")
	semReleaseScript = compose("now", "sem_release")
	semStateScript   = compose("now", "sem_state")
)

// Concurrency is a cluster-wide, adaptive limit on how many provider calls
// of one account are in flight at once, across every worker on every host.
// Where Limiter keeps an account under the limits the provider announces,
// Concurrency finds the load the provider can take when nobody announces it
// (shared capacity, 5xx under load, latency that climbs) and backs off
// before that turns into a storm of retries.
//
// # The controller
//
// It is AIMD, as in TCP congestion control, with all state in Redis so every
// worker obeys one limit:
//
//   - Additive increase: the limit grows by 1 at most once per
//     IncreaseEvery, cluster-wide, and only on a release that is a success,
//     whose latency is flat (at most halfway from the baseline to
//     LatencyRise times it: 1.5x by default), whose caller reports ample
//     quota headroom, and while at least half of the limit is in use. The
//     last rule keeps an idle or lightly used account from drifting up to
//     Max and then bursting into an overload.
//   - Multiplicative decrease: an overload signal (429, 5xx, or a success
//     slower than LatencyRise times the baseline) multiplies the limit by
//     DecreaseFactor, rounded down, never below Min. At most one decrease per
//     DecreaseCooldown, and none for a permit acquired before the last
//     decrease: such a call ran under the old, larger limit that has already
//     been cut, so a burst of 429s from one overload cuts once.
//   - The latency baseline is an exponentially weighted moving average
//     (weight 0.1) of success latencies. Each sample is clamped to
//     LatencyRise times the baseline before it is averaged, so one outlier
//     barely moves it, yet a lasting shift (longer prompts) is learned within
//     a few dozen calls. Callers should pass a latency comparable across
//     calls (time to first token, or latency per output token): raw latency
//     of LLM calls varies with output length far more than with load.
//
// Increase is time based rather than +1/limit per success (TCP's per-ACK
// rule) because the growth rate should not depend on traffic: LLM calls take
// seconds to minutes, so +1 per round trip would take many minutes to find a
// limit of a few dozen, and a burst of quick failures or a handful of slow
// calls would make growth erratic. A fixed cadence gives a predictable ramp
// (4 to 100 in about 3 minutes at 2s), the same whatever the number of
// workers, and tests can drive it with a fake clock.
//
// # Redis
//
// A permit is a member of a sorted set (keys.Permits) scored by its lease
// expiry; the limit and controller state live in a hash (keys.Concurrency).
// Both share the account's hash tag. Acquire (lua/sem_acquire.lua) drops
// expired leases and adds the permit if fewer than the limit are held;
// Release (lua/sem_release.lua) removes it and applies the AIMD step; both
// run atomically, so concurrent workers never exceed the limit. Time comes
// from Config.Clock; a host whose clock runs ahead sees leases end early by
// the skew (a short over-admission), and permits it acquires may be ignored
// as "before the last decrease" for the skew's length.
//
// It is safe for concurrent use.
type Concurrency struct {
	rdb redis.Scripter
	cfg ConcurrencyConfig
}

// NewConcurrency returns a Concurrency using rdb and cfg (defaults filled in).
func NewConcurrency(rdb redis.Scripter, cfg ConcurrencyConfig) (*Concurrency, error) {
	if rdb == nil {
		return nil, errors.New("quota: concurrency: nil Redis client")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Concurrency{rdb: rdb, cfg: cfg}, nil
}

// Acquire takes one permit for account. ok is false when the limit is
// reached; retry is then a hint of when a permit is likely free (the smoothed
// hold time divided by the limit, at least 10ms): add jitter, since every
// waiting worker gets the same hint.
func (c *Concurrency) Acquire(ctx context.Context, account string) (p Permit, ok bool, retry time.Duration, err error) {
	if err := keys.ValidateAccount(account); err != nil {
		return Permit{}, false, 0, fmt.Errorf("quota: %w", err)
	}
	id, err := newID()
	if err != nil {
		return Permit{}, false, 0, err
	}
	now := c.cfg.Clock.Now().UnixMilli()
	res, err := semAcquireScript.Run(ctx, c.rdb,
		[]string{keys.Concurrency(account), keys.Permits(account)},
		clock.ScriptNow(c.cfg.Clock), id, c.cfg.Lease.Milliseconds(), c.cfg.Min, c.cfg.Max, c.cfg.Initial,
	).Int64Slice()
	if err != nil {
		return Permit{}, false, 0, fmt.Errorf("quota: acquire %s: %w", account, err)
	}
	if len(res) < 3 {
		return Permit{}, false, 0, fmt.Errorf("quota: acquire %s: unexpected reply %v", account, res)
	}
	if res[0] == 0 {
		return Permit{}, false, time.Duration(res[2]) * time.Millisecond, nil
	}
	if len(res) >= 4 {
		now = res[3] // Redis's clock, which Release compares with
	}
	return Permit{Account: account, ID: id, Acquired: time.UnixMilli(now)}, true, 0, nil
}

// Release gives p back and lets the call's load signal move the limit (see
// Concurrency). latency is the call's latency as the caller measures it (0 =
// unknown: no latency signal); ample says the quota limiter reports ample
// headroom, which the caller decides, so the limit grows only while the
// provider's announced limits are not what holds the account back.
// Releasing a permit whose lease ended, or releasing twice, still applies
// the signal.
func (c *Concurrency) Release(ctx context.Context, p Permit, sig LoadSignal, latency time.Duration, ample bool) error {
	if err := keys.ValidateAccount(p.Account); err != nil {
		return fmt.Errorf("quota: %w", err)
	}
	if p.ID == "" {
		return errors.New("quota: release: empty permit")
	}
	if sig < LoadNone || sig > LoadOverload {
		return fmt.Errorf("quota: release: unknown load signal %v", sig)
	}
	amp := 0
	if ample {
		amp = 1
	}
	rise := c.cfg.LatencyRise
	if rise < 0 {
		rise = 0
	}
	err := semReleaseScript.Run(ctx, c.rdb,
		[]string{keys.Concurrency(p.Account), keys.Permits(p.Account)},
		clock.ScriptNow(c.cfg.Clock), p.ID, p.Acquired.UnixMilli(), int(sig),
		float64(latency)/float64(time.Millisecond), amp,
		c.cfg.Min, c.cfg.Max, c.cfg.Initial,
		c.cfg.IncreaseEvery.Milliseconds(), c.cfg.DecreaseFactor,
		c.cfg.DecreaseCooldown.Milliseconds(), rise, concurrencyStateTTL.Milliseconds(),
	).Err()
	if err != nil {
		return fmt.Errorf("quota: release %s: %w", p.Account, err)
	}
	return nil
}

// Limit reports account's current limit and how many permits are held
// (leases not yet ended), for status and metrics.
func (c *Concurrency) Limit(ctx context.Context, account string) (limit int, inFlight int, err error) {
	if err := keys.ValidateAccount(account); err != nil {
		return 0, 0, fmt.Errorf("quota: %w", err)
	}
	res, err := semStateScript.Run(ctx, c.rdb,
		[]string{keys.Concurrency(account), keys.Permits(account)},
		clock.ScriptNow(c.cfg.Clock), c.cfg.Min, c.cfg.Max, c.cfg.Initial,
	).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("quota: concurrency limit %s: %w", account, err)
	}
	if len(res) != 2 {
		return 0, 0, fmt.Errorf("quota: concurrency limit %s: unexpected reply %v", account, res)
	}
	return int(res[0]), int(res[1]), nil
}
