package quota

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/promptq/promptq/internal/clock"
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
