package metrics

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/clock"
	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/internal/testutil"
	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/quota"
)

type fakeInspector map[string]*asynq.QueueInfo // nil info = unreadable

func (f fakeInspector) Queues() ([]string, error) {
	names := make([]string, 0, len(f))
	for q := range f {
		names = append(names, q)
	}
	return names, nil
}

func (f fakeInspector) GetQueueInfo(q string) (*asynq.QueueInfo, error) {
	if f[q] == nil {
		return nil, errors.New("broken queue")
	}
	return f[q], nil
}

// gather scrapes c and returns value by metric name and label values.
func gather(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	return gatherFrom(t, reg)
}

// gatherFrom returns the value by metric name and label values of g's series.
func gatherFrom(t *testing.T, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "|" + l.GetValue()
			}
			out[key] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	if m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

func TestQueueCollector(t *testing.T) {
	insp := fakeInspector{
		"ok":     {Queue: "ok", Size: 5, Pending: 3, Retry: 2, Paused: true, Latency: 1500 * time.Millisecond, ProcessedTotal: 7, FailedTotal: 1},
		"broken": nil,
	}
	got := gather(t, NewQueueCollector(insp))
	want := map[string]float64{
		"asynq_queue_tasks|ok|pending":    3,
		"asynq_queue_tasks|ok|retry":      2,
		"asynq_queue_tasks|ok|active":     0,
		"asynq_queue_size|ok":             5,
		"asynq_queue_paused|ok":           1,
		"asynq_queue_latency_seconds|ok":  1.5,
		"asynq_tasks_processed_total|ok":  7,
		"asynq_tasks_failed_total|ok":     1,
		"asynq_queue_scrape_error|ok":     0,
		"asynq_queue_scrape_error|broken": 1, // one bad queue does not fail the scrape
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if _, ok := got["asynq_queue_size|broken"]; ok {
		t.Error("broken queue exported a size")
	}
}

func TestCollectorPause(t *testing.T) {
	r := testutil.NewRedis(t)
	ctx := context.Background()
	acct := testutil.Name(t)
	t.Cleanup(func() { r.Client.Del(ctx, keys.Pause(acct)) })
	clk := clock.NewFake(time.Now().Truncate(time.Millisecond)) // pauses are stored in ms
	gate, err := pausegate.New(r.Client, pausegate.Config{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCollector(Config{Redis: r.Client, Gate: gate, Clock: clk,
		Accounts: func(context.Context) ([]string, error) { return []string{acct}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name              string
		pause             *pausegate.PauseRequest
		paused, remaining float64
	}{
		{"running", nil, 0, 0},
		{"for 90s", &pausegate.PauseRequest{Until: clk.Now().Add(90 * time.Second), Kind: pausegate.KindQuota}, 1, 90},
		{"until resumed", &pausegate.PauseRequest{Kind: pausegate.KindManual}, 1, math.Inf(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.pause != nil {
				if _, err := gate.Pause(ctx, acct, *tt.pause); err != nil {
					t.Fatal(err)
				}
			}
			got := gather(t, c)
			if got["promptq_paused|"+acct] != tt.paused || got["promptq_pause_remaining_seconds|"+acct] != tt.remaining {
				t.Fatalf("paused %v remaining %v, want %v %v", got["promptq_paused|"+acct],
					got["promptq_pause_remaining_seconds|"+acct], tt.paused, tt.remaining)
			}
			if _, ok := got["promptq_quota_limit|"+acct+"|requests"]; ok || got["promptq_scrape_error|"+acct] != 0 {
				t.Fatalf("quota limit / scrape error: %v", got)
			}
		})
	}
}

func TestCollectorConfig(t *testing.T) {
	if _, err := NewCollector(Config{}); err == nil {
		t.Fatal("NewCollector without Redis succeeded")
	}
}

// tenantSeries returns the promptq_tenant_* series of acct in got.
func tenantSeries(got map[string]float64, acct string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range got {
		if strings.HasPrefix(k, "promptq_tenant_") && strings.Contains(k, "|"+acct+"|") {
			out[k] = v
		}
	}
	return out
}

func TestCollectorTenants(t *testing.T) {
	r := testutil.NewRedis(t)
	ctx := context.Background()
	clk := clock.NewFake(time.Now().Truncate(time.Millisecond))
	lim, err := quota.New(r.Client, quota.Config{RPM: 600, Burst: time.Second, Schedule: 2 * time.Second, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	fair, other := testutil.Name(t)+"-f", testutil.Name(t)+"-o"
	testutil.CleanupAccount(t, r.Client, fair)
	testutil.CleanupAccount(t, r.Client, other)
	reserve := func(acct string, opts ...quota.ReserveOption) quota.Decision {
		t.Helper()
		d, err := lim.Reserve(ctx, acct, quota.Cost{Requests: 1, Tokens: 10}, 0, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}

	// fair: t1 has a budget but no pending work; B asked once, then A took
	// the burst and scheduled turns until it is FairSlack ahead of B.
	if err := lim.SetTenantBudget(ctx, fair, "t1", quota.TenantBudget{RPM: 60, Weight: 3}); err != nil {
		t.Fatal(err)
	}
	if d := reserve(fair, quota.WithTenant("B")); !d.OK {
		t.Fatalf("B's first request: %+v", d)
	}
	var last quota.Decision
	for i := 0; i < 30; i++ {
		if last = reserve(fair, quota.WithTenant("A")); !last.OK {
			break
		}
	}
	if last.OK || !last.FairShare {
		t.Fatalf("A's last request = %+v, want a fair-share refusal", last)
	}
	// other: t2 has a budget and pending work, and so do requests without
	// a tenant.
	if err := lim.SetTenantBudget(ctx, other, "t2", quota.TenantBudget{TPM: 1200, DailyRequests: 100}); err != nil {
		t.Fatal(err)
	}
	if d := reserve(other, quota.WithTenant("t2")); !d.OK {
		t.Fatalf("t2's request: %+v", d)
	}
	if d := reserve(other); !d.OK {
		t.Fatalf("request without tenant: %+v", d)
	}

	c, err := NewCollector(Config{Redis: r.Client, Quota: lim, Clock: clk,
		Accounts: func(context.Context) ([]string, error) { return []string{fair, other}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	got := gather(t, c) // fails on duplicate series

	lead := "promptq_tenant_fair_lead_seconds|" + fair + "|A"
	if v := got[lead]; v <= quota.FairSlack.Seconds() {
		t.Errorf("%s = %v, want > %v", lead, v, quota.FairSlack.Seconds())
	}
	// Requests without a tenant joined after t2: within FairSlack of it.
	noneLead := "promptq_tenant_fair_lead_seconds|" + other + "|(none)"
	if v := got[noneLead]; v < 0 || v > quota.FairSlack.Seconds() {
		t.Errorf("%s = %v, want within [0, %v]", noneLead, v, quota.FairSlack.Seconds())
	}
	want := map[string]float64{
		// label values in label-name order: account, bucket|kind, tenant
		"promptq_tenant_budget|" + fair + "|rpm|t1":             60,
		"promptq_tenant_weight|" + fair + "|t1":                 3,
		"promptq_tenant_available|" + fair + "|requests|t1":     5, // TenantBurst (5s) of 60 rpm, unused
		"promptq_tenant_daily_requests_used|" + fair + "|t1":    0,
		"promptq_tenant_weight|" + fair + "|A":                  1,
		"promptq_tenant_weight|" + fair + "|B":                  1,
		"promptq_tenant_pending|" + fair + "|A":                 1,
		"promptq_tenant_pending|" + fair + "|B":                 1,
		lead:                                                    got[lead], // checked above
		"promptq_tenant_fair_lead_seconds|" + fair + "|B":       0,
		"promptq_tenant_yielding|" + fair + "|A":                1,
		"promptq_tenant_yielding|" + fair + "|B":                0,
		"promptq_tenant_budget|" + other + "|tpm|t2":            1200,
		"promptq_tenant_budget|" + other + "|daily_requests|t2": 100,
		"promptq_tenant_available|" + other + "|tokens|t2":      90, // 100 (5s of 1200 tpm) - 10
		"promptq_tenant_daily_requests_used|" + other + "|t2":   1,
		"promptq_tenant_weight|" + other + "|t2":                1,
		"promptq_tenant_pending|" + other + "|t2":               1,
		"promptq_tenant_fair_lead_seconds|" + other + "|t2":     0,
		"promptq_tenant_yielding|" + other + "|t2":              0,
		"promptq_tenant_weight|" + other + "|(none)":            1,
		"promptq_tenant_pending|" + other + "|(none)":           1,
		noneLead: got[noneLead], // checked above
		"promptq_tenant_yielding|" + other + "|(none)": 0,
	}
	series := tenantSeries(got, fair)
	for k, v := range tenantSeries(got, other) {
		series[k] = v
	}
	for k, v := range want {
		if g, ok := series[k]; !ok || math.Abs(g-v) > 1e-9 {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	for k, v := range series {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected series %s = %v", k, v)
		}
	}
	if got["promptq_scrape_error|"+fair] != 0 || got["promptq_scrape_error|"+other] != 0 {
		t.Errorf("scrape errors: %v %v", got["promptq_scrape_error|"+fair], got["promptq_scrape_error|"+other])
	}
}

// registerPool records pool as its workers do (keys.Pools, keys.Pool:
// account -> tier) and removes it when t ends.
func registerPool(t *testing.T, rdb *redis.Client, pool string, tiers map[string]int) {
	t.Helper()
	ctx := context.Background()
	t.Cleanup(func() {
		rdb.SRem(ctx, keys.Pools(), pool)
		rdb.Del(ctx, keys.Pool(pool))
	})
	for a, tier := range tiers {
		if err := rdb.HSet(ctx, keys.Pool(pool), a, tier).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.SAdd(ctx, keys.Pools(), pool).Err(); err != nil {
		t.Fatal(err)
	}
}

// reserveRequests admits n requests for account through lim, so the daily
// counters move as a worker's would.
func reserveRequests(t *testing.T, lim *quota.Limiter, account string, n int) {
	t.Helper()
	for range n {
		if d, err := lim.ReserveRequest(context.Background(), account, quota.Input{Chars: 40}, 100); err != nil || !d.OK {
			t.Fatalf("reserve for %s: %+v %v", account, d, err)
		}
	}
}

// TestCollectorPool: a pool of two accounts, one paused, the other paused
// for one model: each member's tier, its share of the pool's requests
// today (adding up to 1) and the model pause are exported, and the
// accounts' own series stay as they were.
func TestCollectorPool(t *testing.T) {
	r := testutil.NewRedis(t)
	ctx := context.Background()
	clk := clock.NewFake(time.Now().Truncate(time.Millisecond))
	pool, east, west := testutil.Name(t)+"-pool", testutil.Name(t)+"-east", testutil.Name(t)+"-west"
	registerPool(t, r.Client, pool, map[string]int{east: 1, west: 2})
	testutil.CleanupAccount(t, r.Client, east)
	testutil.CleanupAccount(t, r.Client, west)
	lim, err := quota.New(r.Client, quota.Config{RPM: 600, TPM: 100_000, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	gate, err := pausegate.New(r.Client, pausegate.Config{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCollector(Config{Redis: r.Client, Quota: lim, Gate: gate, Clock: clk,
		Accounts: func(context.Context) ([]string, error) { return []string{east, west}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	info := func(acct, tier string) string { return "promptq_pool_account_info|" + acct + "|" + pool + "|" + tier }
	share := func(acct string) string { return "promptq_pool_traffic_share|" + acct + "|" + pool }

	// No request yet today: members, but no share (never a sentinel 0).
	got := gather(t, c)
	if got[info(east, "1")] != 1 || got[info(west, "2")] != 1 {
		t.Fatalf("pool info: %v", got)
	}
	if _, ok := got[share(east)]; ok {
		t.Fatalf("a share before any request: %v", got[share(east)])
	}

	reserveRequests(t, lim, east, 3)
	reserveRequests(t, lim, west, 1)
	if _, err := gate.Pause(ctx, west, pausegate.PauseRequest{Until: clk.Now().Add(time.Hour), Kind: pausegate.KindQuota, Reason: "insufficient_quota"}); err != nil {
		t.Fatal(err)
	}
	if _, err := gate.PauseModel(ctx, east, "gpt-4o", clk.Now().Add(time.Hour), "model_not_found"); err != nil {
		t.Fatal(err)
	}
	got = gather(t, c)
	want := map[string]float64{
		info(east, "1"): 1,
		info(west, "2"): 1,
		share(east):     0.75,
		share(west):     0.25,
		"promptq_account_model_paused|" + east + "|gpt-4o": 1,
		"promptq_paused|" + west:                           1,
		"promptq_paused|" + east:                           0, // a model pause is not a pause of the account
		"promptq_daily_used|" + east + "|requests":         3,
		"promptq_daily_used|" + west + "|requests":         1,
		"promptq_scrape_error|" + east:                     0,
		"promptq_scrape_error|" + west:                     0,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	sum := 0.0
	for k, v := range got {
		if strings.HasPrefix(k, "promptq_pool_traffic_share|") && strings.HasSuffix(k, "|"+pool) {
			sum += v
		}
		if strings.HasPrefix(k, "promptq_account_model_paused|"+west) {
			t.Errorf("unexpected model pause %s", k)
		}
	}
	if math.Abs(sum-1) > 1e-12 {
		t.Errorf("shares of %s add up to %v", pool, sum)
	}
}
