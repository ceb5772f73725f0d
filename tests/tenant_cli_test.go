package tests

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/promptq/promptq/internal/testutil"
	"github.com/promptq/promptq/quota"
)

// TestTenantCLI: budgets and weights set with `promptq tenant` reach the
// limiter every worker uses, bad values get one error line, and `promptq
// status` shows which tenants with pending work are yielding to others.
func TestTenantCLI(t *testing.T) {
	t.Parallel()
	url := needRedis(t)
	rdb := redisClient(t, url)
	acct := testutil.Name(t)
	testutil.CleanupAccount(t, rdb, acct)
	ctx := context.Background()

	out, errOut, code := runCLI(t, "", "tenant", "set", "--redis", url, "--account", acct, "--tenant", "B", "--rpm", "600", "--weight", "3")
	if code != 0 || !strings.Contains(out, "600 rpm, weight 3") {
		t.Fatalf("tenant set: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	_, errOut, code = runCLI(t, "", "tenant", "set", "--redis", url, "--account", acct, "--tenant", "B", "--weight", "1001")
	requireOneLineError(t, "tenant set --weight 1001", errOut, code, "--weight / TENANT_WEIGHT")
	_, errOut, code = runCLI(t, "", "tenant", "set", "--redis", url, "--account", acct, "--tenant", "bad{name}", "--weight", "2")
	requireOneLineError(t, "tenant set --tenant bad{name}", errOut, code, "--tenant")

	out, errOut, code = runCLI(t, "", "tenant", "list", "--redis", url, "--account", acct, "--json")
	var ts []quota.TenantState
	if err := json.Unmarshal([]byte(out), &ts); code != 0 || err != nil || len(ts) != 1 ||
		ts[0].Tenant != "B" || ts[0].Budget != (quota.TenantBudget{RPM: 600, Weight: 3}) {
		t.Fatalf("tenant list --json: exit %d, %v, %+v (stderr %q)", code, err, ts, errOut)
	}

	// Two tenants with pending work on an account of 60 requests a minute:
	// B (weight 3) asks, then A books turns until it runs ahead and yields.
	lim, err := quota.New(rdb, quota.Config{RPM: 60, Burst: time.Second, Schedule: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cost := quota.Cost{Requests: 1, Tokens: 10}
	if d, err := lim.Reserve(ctx, acct, cost, 0, quota.WithTenant("B")); err != nil || !d.OK {
		t.Fatalf("Reserve for B = %+v, %v", d, err)
	}
	yielded := false
	for i := 0; i < 10 && !yielded; i++ {
		d, err := lim.Reserve(ctx, acct, cost, 0, quota.WithTenant("A"))
		if err != nil {
			t.Fatal(err)
		}
		yielded = d.FairShare
	}
	if !yielded {
		t.Fatal("A never yielded to B")
	}
	out, errOut, code = runCLI(t, "", "status", "--redis", url, "--account", acct)
	if code != 0 {
		t.Fatalf("status: exit %d, stderr %q", code, errOut)
	}
	var a, b string
	for _, l := range strings.Split(out, "\n") {
		switch f := strings.Fields(l); {
		case len(f) > 0 && f[0] == "A":
			a = l
		case len(f) > 0 && f[0] == "B" && !strings.Contains(l, "rpm"):
			b = l
		}
	}
	if !strings.Contains(out, "fair share between tenants with pending work") ||
		!strings.Contains(a, "yielding") || b == "" || strings.Contains(b, "yielding") || !strings.Contains(b, " 3 ") {
		t.Fatalf("status does not show A yielding to B (weight 3):\n%s", out)
	}
}
