package metrics

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/promptq/promptq/internal/clock"
	"github.com/promptq/promptq/internal/testutil"
	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/quota"
)

// TestExpositionLint runs everything serve exports through Prometheus's own
// lint (the checks of `promtool check metrics`): counters end in _total and
// nothing else does, units are base units in the name, help is set.
// The account has learned limits, a pause, a model pause, tenants, a 429
// and a pool, so every series family is present.
func TestExpositionLint(t *testing.T) {
	r := testutil.NewRedis(t)
	ctx := context.Background()
	clk := clock.NewFake(time.Now().Truncate(time.Millisecond))
	lim, err := quota.New(r.Client, quota.Config{RPM: 600, TPM: 100000, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	acct := testutil.Name(t)
	testutil.CleanupAccount(t, r.Client, acct)
	if err := lim.SetTenantBudget(ctx, acct, "t1", quota.TenantBudget{RPM: 60, TPM: 1000, DailyRequests: 10, Weight: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := lim.Reserve(ctx, acct, quota.Cost{Requests: 1, Tokens: 10}, 0, quota.WithTenant("t1")); err != nil {
		t.Fatal(err)
	}
	if err := lim.RecordThrottle(ctx, acct); err != nil {
		t.Fatal(err)
	}
	gate, err := pausegate.New(r.Client, pausegate.Config{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gate.Pause(ctx, acct, pausegate.PauseRequest{Until: clk.Now().Add(time.Minute), Kind: pausegate.KindQuota, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := gate.PauseModel(ctx, acct, "m", time.Time{}, "test"); err != nil {
		t.Fatal(err)
	}
	registerPool(t, r.Client, acct+"-pool", map[string]int{acct: 1})
	c, err := NewCollector(Config{Redis: r.Client, Quota: lim, Gate: gate, Clock: clk,
		Accounts: func(context.Context) ([]string, error) { return []string{acct}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, NewBuildInfo(), NewQueueCollector(fakeInspector{
		"q": {Queue: "q", Size: 2, Pending: 2, Paused: true, ProcessedTotal: 3},
	}))
	problems, err := promtest.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	got := gatherFrom(t, reg)
	for _, name := range []string{"promptq_build_info", "promptq_quota_limit", "promptq_tenant_budget", "asynq_queue_tasks", "asynq_queue_paused", "promptq_paused",
		"promptq_account_model_paused", "promptq_pool_account_info", "promptq_pool_traffic_share"} {
		found := false
		for k := range got {
			found = found || strings.HasPrefix(k, name+"|")
		}
		if !found {
			t.Errorf("no %s series: the lint did not see it", name)
		}
	}
}

// Before any worker has run there is no account, but build info is there.
func TestBuildInfoAlone(t *testing.T) {
	got := gather(t, NewBuildInfo())
	if len(got) != 1 {
		t.Fatalf("build info series: %v", got)
	}
	for k, v := range got {
		if !strings.HasPrefix(k, "promptq_build_info|") || v != 1 {
			t.Fatalf("%s = %v", k, v)
		}
	}
}
