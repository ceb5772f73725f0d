package metrics

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/clock"
	"github.com/promptq/promptq/internal/status"
	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/quota"
)

// ScrapeTimeoutDefault bounds the Redis reads of one scrape.
const ScrapeTimeoutDefault = 5 * time.Second

// Config configures a Collector.
type Config struct {
	// Redis is the client the limiter and the gate read from (required).
	Redis redis.UniversalClient
	// Accounts lists the accounts to export. Default: every account that has
	// run a worker (the keys.Accounts set).
	Accounts func(ctx context.Context) ([]string, error)
	// Quota is the limiter whose snapshots are exported. Default: a limiter
	// with quota's default config on Redis (daily limits then read as 0).
	Quota *quota.Limiter
	// Gate is the pause gate read for pause state. Default: a gate with
	// pausegate's default config on Redis.
	Gate *pausegate.Gate
	// Clock gives the time for remaining pause seconds. Default clock.Real.
	Clock clock.Clock
	// ScrapeTimeout bounds one scrape's Redis reads. Default ScrapeTimeoutDefault.
	ScrapeTimeout time.Duration
}

// WithDefaults fills zero fields with their defaults (Quota and Gate are
// built in NewCollector, which needs Redis).
func (c Config) WithDefaults() Config {
	c.ScrapeTimeout = cmp.Or(c.ScrapeTimeout, ScrapeTimeoutDefault)
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Accounts == nil && c.Redis != nil {
		rdb := c.Redis
		c.Accounts = func(ctx context.Context) ([]string, error) { return pausegate.Accounts(ctx, rdb) }
	}
	return c
}

// Validate reports a missing or out-of-range field.
func (c Config) Validate() error {
	switch {
	case c.Redis == nil:
		return errors.New("metrics: Config.Redis is required")
	case c.ScrapeTimeout < 0:
		return fmt.Errorf("metrics: Config.ScrapeTimeout must be positive, got %v", c.ScrapeTimeout)
	}
	return nil
}

var (
	quotaLimitDesc = prometheus.NewDesc("promptq_quota_limit",
		"Per-minute limit in force for an account (learned from headers or configured); absent while unknown.",
		[]string{"account", "resource"}, nil)
	quotaAvailableDesc = prometheus.NewDesc("promptq_quota_available",
		"Units that could be reserved now (negative: in debt); absent while the limit is unknown.",
		[]string{"account", "resource"}, nil)
	pausedDesc = prometheus.NewDesc("promptq_paused",
		"1 while the account is paused.", []string{"account"}, nil)
	pauseRemainingDesc = prometheus.NewDesc("promptq_pause_remaining_seconds",
		"Seconds until the account's pause ends; 0 when not paused, +Inf when paused until resumed.",
		[]string{"account"}, nil)
	throttledDesc = prometheus.NewDesc("promptq_throttled_total",
		"HTTP 429 responses the provider returned for the account.", []string{"account"}, nil)
	inflightDesc = prometheus.NewDesc("promptq_inflight_reservations",
		"Quota reservations in flight (not yet settled nor expired).", []string{"account"}, nil)
	dailyUsedDesc = prometheus.NewDesc("promptq_daily_used",
		"Requests or tokens used today, including reservations in flight.", []string{"account", "resource"}, nil)
	estimateErrDesc = prometheus.NewDesc("promptq_estimate_mean_abs_error_tokens",
		"Mean absolute error of the input-token estimate over settled requests; absent before the first one.", []string{"account"}, nil)
	calibFactorDesc = prometheus.NewDesc("promptq_calibration_factor",
		"Factor the cost calibration applies to the estimate's basis (the upper quantile of the provider's charge per unit of basis); exported once a factor is learned.",
		[]string{"account", "basis", "source"}, nil)
	calibSpreadDesc = prometheus.NewDesc("promptq_calibration_spread",
		"Spread of the calibration's recent charge/basis ratios, (q90 - q10) / median: how well the basis predicts the provider's charge.",
		[]string{"account", "basis"}, nil)
	calibSamplesDesc = prometheus.NewDesc("promptq_calibration_samples_total",
		"Calibration samples taken from the provider's accounting (remaining tokens between responses, or usage).", []string{"account"}, nil)
	calibRefusedDesc = prometheus.NewDesc("promptq_calibration_signals_refused_total",
		"Accounting signals the calibration refused: absurd ones (remaining above the limit, negative usage) and responses without a remaining-tokens figure.",
		[]string{"account", "reason"}, nil)
	modelPausedDesc = prometheus.NewDesc("promptq_account_model_paused",
		"1 for each model the account is paused for alone (model_not_found in a pool), while that pause is in force.",
		[]string{"account", "model"}, nil)
	accountErrorDesc = prometheus.NewDesc("promptq_scrape_error",
		"1 when the account's state could not be read on this scrape.", []string{"account"}, nil)

	// Per-tenant series (quota.Limiter.SetTenantBudget, quota.WithTenant).
	// Requests without a tenant carry the tenant label "(none)", which no
	// tenant name can take.
	tenantBudgetDesc = prometheus.NewDesc("promptq_tenant_budget",
		"Budget set for a tenant of the account, by kind (rpm, tpm, daily_requests); only kinds that are set.",
		[]string{"account", "tenant", "kind"}, nil)
	tenantWeightDesc = prometheus.NewDesc("promptq_tenant_weight",
		"Effective weighted-fair-sharing weight (1 when unset) of a tenant with a budget or with pending work; tenant \"(none)\" = requests without a tenant.",
		[]string{"account", "tenant"}, nil)
	tenantAvailableDesc = prometheus.NewDesc("promptq_tenant_available",
		"Units a tenant could reserve now under its per-minute budget (negative: in debt); only buckets (requests, tokens) with a budget.",
		[]string{"account", "tenant", "bucket"}, nil)
	tenantDailyUsedDesc = prometheus.NewDesc("promptq_tenant_daily_requests_used",
		"Requests a tenant with a budget used today, including reservations in flight.",
		[]string{"account", "tenant"}, nil)
	tenantPendingDesc = prometheus.NewDesc("promptq_tenant_pending",
		"1 for each tenant with pending work (a request waiting for headroom now or within quota.FairGrace); tenant \"(none)\" = requests without a tenant.",
		[]string{"account", "tenant"}, nil)
	tenantFairLeadDesc = prometheus.NewDesc("promptq_tenant_fair_lead_seconds",
		"How far a tenant with pending work is ahead of the one furthest behind in weighted fair sharing (account capacity / weight); tenant \"(none)\" = requests without a tenant.",
		[]string{"account", "tenant"}, nil)
	tenantYieldingDesc = prometheus.NewDesc("promptq_tenant_yielding",
		"1 while a tenant with pending work is too far ahead and yields its scheduled turns to the others; tenant \"(none)\" = requests without a tenant.",
		[]string{"account", "tenant"}, nil)
)

// Per-pool series (promptq worker --pool): membership and today's traffic.
var (
	poolAccountInfoDesc = prometheus.NewDesc("promptq_pool_account_info",
		"1 for each account of each pool, with its tier (lower tiers are used first).",
		[]string{"pool", "account", "tier"}, nil)
	poolShareDesc = prometheus.NewDesc("promptq_pool_traffic_share",
		"The account's share (0..1) of its pool's requests today (daily counters, reservations in flight included); absent while the pool has served nothing today.",
		[]string{"pool", "account"}, nil)
)

// NoTenant is the tenant label value of requests without a tenant (tenant
// names are [A-Za-z0-9_.-], so no tenant can be named so).
const NoTenant = "(none)"

// tenantLabel is the tenant label value of tenant.
func tenantLabel(tenant string) string {
	if tenant == "" {
		return NoTenant
	}
	return tenant
}

// Resource label values.
const (
	resourceRequests = "requests"
	resourceTokens   = "tokens"
)

// Collector exports every account's quota and pause state, read from Redis
// at scrape time.
type Collector struct {
	cfg Config
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector for cfg.
func NewCollector(cfg Config) (*Collector, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Quota == nil {
		lim, err := quota.New(cfg.Redis, quota.Config{})
		if err != nil {
			return nil, err
		}
		cfg.Quota = lim
	}
	if cfg.Gate == nil {
		g, err := pausegate.New(cfg.Redis, pausegate.Config{Clock: cfg.Clock})
		if err != nil {
			return nil, err
		}
		cfg.Gate = g
	}
	return &Collector{cfg: cfg}, nil
}

// Describe sends the descriptors of every series the collector may export.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{quotaLimitDesc, quotaAvailableDesc, pausedDesc, pauseRemainingDesc,
		throttledDesc, inflightDesc, dailyUsedDesc, estimateErrDesc, modelPausedDesc, accountErrorDesc,
		calibFactorDesc, calibSpreadDesc, calibSamplesDesc, calibRefusedDesc,
		tenantBudgetDesc, tenantWeightDesc, tenantAvailableDesc, tenantDailyUsedDesc,
		tenantPendingDesc, tenantFairLeadDesc, tenantYieldingDesc,
		poolAccountInfoDesc, poolShareDesc} {
		ch <- d
	}
}

// Collect reads every account and sends its series, then the series of
// the pools that hold them. An account that cannot be read gets
// promptq_scrape_error 1; failing to list accounts, or to read a pool,
// makes the scrape report an error.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ScrapeTimeout)
	defer cancel()
	accounts, err := c.cfg.Accounts(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(pausedDesc, fmt.Errorf("list accounts: %w", err))
		return
	}
	read := make(map[string]status.AccountRead, len(accounts))
	for _, a := range accounts {
		failed := 0.0
		if r, err := c.collectAccount(ctx, ch, a); err != nil {
			failed = 1
		} else {
			read[a] = r
		}
		ch <- prometheus.MustNewConstMetric(accountErrorDesc, prometheus.GaugeValue, failed, a)
	}
	c.collectPools(ctx, ch, accounts, read)
}

// collectPools sends the series of the pools that hold any of accounts,
// reusing what was read of them (read).
func (c *Collector) collectPools(ctx context.Context, ch chan<- prometheus.Metric, accounts []string, read map[string]status.AccountRead) {
	pools, err := status.CollectPools(ctx, c.cfg.Redis, c.cfg.Gate, c.cfg.Quota, accounts, read, c.cfg.Clock.Now())
	if err != nil {
		ch <- prometheus.NewInvalidMetric(poolAccountInfoDesc, fmt.Errorf("read pools: %w", err))
		return
	}
	for name, p := range pools {
		for _, a := range p.Accounts {
			ch <- prometheus.MustNewConstMetric(poolAccountInfoDesc, prometheus.GaugeValue, 1, name, a.Account, strconv.Itoa(a.Tier))
			if a.ShareToday != nil {
				ch <- prometheus.MustNewConstMetric(poolShareDesc, prometheus.GaugeValue, *a.ShareToday, name, a.Account)
			}
		}
	}
}

// collectAccount sends account a's series and returns what it read.
func (c *Collector) collectAccount(ctx context.Context, ch chan<- prometheus.Metric, a string) (status.AccountRead, error) {
	now := c.cfg.Clock.Now()
	r, err := status.ReadAccount(ctx, c.cfg.Gate, c.cfg.Quota, a, now)
	if err != nil {
		return r, err
	}
	snap := r.Snapshot
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, b := range []struct {
		resource string
		state    quota.BucketState
		daily    int64
	}{
		{resourceRequests, snap.Requests, snap.Daily.Requests},
		{resourceTokens, snap.Tokens, snap.Daily.Tokens},
	} {
		if b.state.Limit > 0 { // unknown: no series (never a sentinel value)
			gauge(quotaLimitDesc, float64(b.state.Limit), a, b.resource)
			gauge(quotaAvailableDesc, b.state.Available, a, b.resource)
		}
		gauge(dailyUsedDesc, float64(b.daily), a, b.resource)
	}
	paused, remaining := 0.0, 0.0
	if r.Pause.Paused {
		paused = 1
		switch rem := r.Record.Remaining(now); rem {
		case pausegate.Indefinite:
			remaining = math.Inf(1)
		default:
			remaining = rem.Seconds()
		}
	}
	gauge(pausedDesc, paused, a)
	gauge(pauseRemainingDesc, remaining, a)
	gauge(inflightDesc, float64(snap.InFlight), a)
	if snap.EstimateSamples > 0 {
		gauge(estimateErrDesc, snap.EstimateMeanAbsErr, a)
	}
	ch <- prometheus.MustNewConstMetric(throttledDesc, prometheus.CounterValue, float64(snap.Throttled), a)
	cal := snap.Calibration
	if cal.Basis != "" {
		ch <- prometheus.MustNewConstMetric(calibFactorDesc, prometheus.GaugeValue, cal.Factor, a, cal.Basis, cal.Source)
		ch <- prometheus.MustNewConstMetric(calibSpreadDesc, prometheus.GaugeValue, cal.Spread, a, cal.Basis)
	}
	ch <- prometheus.MustNewConstMetric(calibSamplesDesc, prometheus.CounterValue, float64(cal.Samples), a)
	ch <- prometheus.MustNewConstMetric(calibRefusedDesc, prometheus.CounterValue, float64(cal.Bad), a, "absurd")
	ch <- prometheus.MustNewConstMetric(calibRefusedDesc, prometheus.CounterValue, float64(cal.Missing), a, "missing")
	for _, m := range r.Models {
		gauge(modelPausedDesc, 1, a, m.Model)
	}
	collectTenants(gauge, a, snap)
	return r, nil
}

// Kind label values of promptq_tenant_budget (the bucket label of
// promptq_tenant_available reuses the resource values).
const (
	kindRPM           = "rpm"
	kindTPM           = "tpm"
	kindDailyRequests = "daily_requests"
)

// collectTenants sends the per-tenant budget and fair-sharing series of
// account a.
func collectTenants(gauge func(d *prometheus.Desc, v float64, labels ...string), a string, snap quota.Snapshot) {
	weighted := make(map[string]bool, len(snap.Tenants)+len(snap.Fair))
	for _, ts := range snap.Tenants {
		t := tenantLabel(ts.Tenant)
		b := ts.Budget
		for _, k := range []struct {
			kind   string
			budget int64
		}{{kindRPM, b.RPM}, {kindTPM, b.TPM}, {kindDailyRequests, b.DailyRequests}} {
			if k.budget > 0 {
				gauge(tenantBudgetDesc, float64(k.budget), a, t, k.kind)
			}
		}
		if b.RPM > 0 {
			gauge(tenantAvailableDesc, ts.Requests, a, t, resourceRequests)
		}
		if b.TPM > 0 {
			gauge(tenantAvailableDesc, ts.Tokens, a, t, resourceTokens)
		}
		gauge(tenantDailyUsedDesc, float64(ts.DailyRequests), a, t)
		gauge(tenantWeightDesc, float64(max(1, b.Weight)), a, t)
		weighted[t] = true
	}
	for _, f := range snap.Fair {
		t := tenantLabel(f.Tenant)
		if !weighted[t] { // a tenant with a budget has its weight already
			gauge(tenantWeightDesc, float64(max(1, f.Weight)), a, t)
			weighted[t] = true
		}
		yielding := 0.0
		if f.Yielding() {
			yielding = 1
		}
		gauge(tenantPendingDesc, 1, a, t)
		gauge(tenantFairLeadDesc, f.Lead.Seconds(), a, t)
		gauge(tenantYieldingDesc, yielding, a, t)
	}
}
