package status

import (
	"time"

	"github.com/promptq/promptq/quota"
)

// Quota is the JSON of one account's quota.Snapshot in the report: snake_case
// keys, durations in milliseconds, null for what is unknown (or, for a daily
// budget, not configured). It is built only by NewQuota, so a field added to
// quota.Snapshot is rendered by adding it here and there, nowhere else.
type Quota struct {
	Account   string `json:"account"`
	Requests  Bucket `json:"requests"`
	Tokens    Bucket `json:"tokens"`
	Daily     Daily  `json:"daily"`
	InFlight  int64  `json:"in_flight"`
	Throttled int64  `json:"throttled"`
	// RampFraction is the share of the limits admitted after a slow_down (1 = none).
	RampFraction float64     `json:"ramp_fraction"`
	Estimate     Estimate    `json:"input_token_estimate"`
	Calibration  Calibration `json:"calibration"`
	Tenants      []Tenant    `json:"tenants"`
	Fair         []Fair      `json:"fair"`
	UpdatedAt    *string     `json:"updated_at"` // RFC 3339 with milliseconds
}

// Bucket is one per-minute rate bucket.
type Bucket struct {
	Limit     *int64   `json:"limit"`       // per minute; null until learned or configured
	Available *float64 `json:"available"`   // could be reserved now (negative = in debt); null when the limit is unknown
	ResetInMs *int64   `json:"reset_in_ms"` // until the bucket is full; null when the limit is unknown
	Source    string   `json:"source"`      // "headers", "config", "ramp" or "unknown"
}

// Daily is today's use against the daily budget.
type Daily struct {
	Date         string  `json:"date"`
	Requests     int64   `json:"requests"`
	Tokens       int64   `json:"tokens"`
	RequestLimit *int64  `json:"request_limit"` // null: no budget
	TokenLimit   *int64  `json:"token_limit"`   // null: no budget
	Threshold    float64 `json:"threshold"`
	ResetAt      *string `json:"reset_at"`
}

// Estimate is the input-token estimator's error over settled requests.
type Estimate struct {
	Samples int64 `json:"samples"`
	// MeanAbsError is the mean |estimated - actual| in tokens; null without samples.
	MeanAbsError *float64 `json:"mean_abs_error"`
	// Bias is the mean (estimated - actual) / actual; null without samples.
	Bias *float64 `json:"bias"`
}

// Calibration is what the limiter learned of how the provider charges a
// request's input (quota.Calibration).
type Calibration struct {
	Source  *string  `json:"source"` // "headers" or "usage"; null: nothing learned yet
	Basis   *string  `json:"basis"`  // "chars" or "tokens"; null: none yet
	Factor  *float64 `json:"factor"` // null: none yet
	Spread  *float64 `json:"spread"` // null: none yet
	Ring    int64    `json:"ring"`
	Samples int64    `json:"samples"`
	Bad     int64    `json:"bad"`
	Missing int64    `json:"missing"`
}

// Tenant is one tenant's budget and use.
type Tenant struct {
	Tenant            string       `json:"tenant"`
	Budget            TenantBudget `json:"budget"`
	RequestsAvailable float64      `json:"requests_available"`
	TokensAvailable   float64      `json:"tokens_available"`
	DailyRequestsUsed int64        `json:"daily_requests_used"`
}

// TenantBudget is a tenant's budget; 0 means no budget of that kind (weight
// 0 counts as 1).
type TenantBudget struct {
	RPM           int64 `json:"rpm"`
	TPM           int64 `json:"tpm"`
	DailyRequests int64 `json:"daily_requests"`
	Weight        int64 `json:"weight"`
}

// Fair is one tenant with pending work in weighted fair sharing.
type Fair struct {
	Tenant       string  `json:"tenant"` // "" = requests without a tenant
	Weight       int64   `json:"weight"`
	PendingUntil *string `json:"pending_until"`
	LeadMs       int64   `json:"lead_ms"`
	Yielding     bool    `json:"yielding"`
}

// NewQuota renders s for JSON.
func NewQuota(s quota.Snapshot) Quota {
	q := Quota{
		Account:      s.Account,
		Requests:     newBucket(s.Requests),
		Tokens:       newBucket(s.Tokens),
		InFlight:     s.InFlight,
		Throttled:    s.Throttled,
		RampFraction: s.RampFraction,
		Estimate:     Estimate{Samples: s.EstimateSamples},
		Tenants:      NewTenants(s.Tenants),
		Fair:         make([]Fair, 0, len(s.Fair)),
		UpdatedAt:    timeString(s.UpdatedAt),
		Daily: Daily{
			Date: s.Daily.Date, Requests: s.Daily.Requests, Tokens: s.Daily.Tokens,
			RequestLimit: positive(s.Daily.RequestLimit), TokenLimit: positive(s.Daily.TokenLimit),
			Threshold: s.Daily.Threshold, ResetAt: timeString(s.Daily.ResetAt),
		},
	}
	c := s.Calibration
	q.Calibration = Calibration{Ring: c.Ring, Samples: c.Samples, Bad: c.Bad, Missing: c.Missing}
	if c.Source != "" {
		q.Calibration.Source = ptr(c.Source)
	}
	if c.Basis != "" {
		q.Calibration.Basis, q.Calibration.Factor, q.Calibration.Spread = ptr(c.Basis), ptr(c.Factor), ptr(c.Spread)
	}
	if s.EstimateSamples > 0 {
		q.Estimate.MeanAbsError, q.Estimate.Bias = ptr(s.EstimateMeanAbsErr), ptr(s.EstimateBias)
	}
	for _, f := range s.Fair {
		q.Fair = append(q.Fair, Fair{Tenant: f.Tenant, Weight: f.Weight, PendingUntil: timeString(f.PendingUntil),
			LeadMs: f.Lead.Milliseconds(), Yielding: f.Yielding()})
	}
	return q
}

// NewTenants renders tenant states for JSON ([] when there are none).
func NewTenants(ts []quota.TenantState) []Tenant {
	out := make([]Tenant, 0, len(ts))
	for _, t := range ts {
		out = append(out, Tenant{Tenant: t.Tenant, Budget: NewTenantBudget(t.Budget),
			RequestsAvailable: t.Requests, TokensAvailable: t.Tokens, DailyRequestsUsed: t.DailyRequests})
	}
	return out
}

// NewTenantBudget renders a tenant budget for JSON.
func NewTenantBudget(b quota.TenantBudget) TenantBudget {
	return TenantBudget{RPM: b.RPM, TPM: b.TPM, DailyRequests: b.DailyRequests, Weight: b.Weight}
}

func newBucket(b quota.BucketState) Bucket {
	out := Bucket{Source: b.Source}
	if b.Limit > 0 {
		out.Limit, out.Available, out.ResetInMs = ptr(b.Limit), ptr(b.Available), ptr(ceilMs(b.ResetIn))
	}
	return out
}

// ceilMs rounds d up to whole milliseconds, so a bucket short of full never
// reads 0.
func ceilMs(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

func positive(v int64) *int64 {
	if v <= 0 {
		return nil
	}
	return &v
}

// timeString is t in RFC 3339 with milliseconds, nil for the zero time.
func timeString(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	return ptr(t.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
}

func ptr[T any](v T) *T { return &v }
