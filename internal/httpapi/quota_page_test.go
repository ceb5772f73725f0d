package httpapi

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/internal/status"
	"github.com/promptq/promptq/internal/testutil"
	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/quota"
)

func TestQuotaEndpoint(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	ctx := context.Background()
	lim, err := quota.New(e.r.Client, quota.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := lim.RecordThrottle(ctx, e.account); err != nil {
		t.Fatal(err)
	}
	gate, err := pausegate.New(e.r.Client, pausegate.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gate.Pause(ctx, e.account, pausegate.PauseRequest{Until: time.Now().Add(time.Hour), Reason: "insufficient_quota", Kind: pausegate.KindQuota}); err != nil {
		t.Fatal(err)
	}
	var rep QuotaReport
	e.doJSON(t, "GET", "/v1/quota?account="+e.account, "", "", http.StatusOK, &rep)
	a, ok := rep.Accounts[e.account]
	if !ok || !a.Pause.Paused || a.Pause.Reason != "insufficient_quota" || a.Pause.RemainingMs == nil || a.Quota.Throttled != 1 {
		t.Fatalf("/v1/quota = %+v, want the account paused (insufficient_quota) with one 429", rep)
	}
}

func TestQuotaPage(t *testing.T) {
	t.Parallel()
	const token = "s3cret-admin-token-value"
	e := setup(t, func(c *Config) { c.AdminToken = token })
	get := func(path string, auth func(*http.Request)) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", e.ts.URL+path, nil)
		if auth != nil {
			auth(req)
		}
		resp, err := e.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = strings.NewReader("").WriteTo(&b)
		buf := make([]byte, 1<<20)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp, b.String()
	}
	basic := func(r *http.Request) { r.SetBasicAuth("ops", token) }
	if resp, _ := get("/quota/", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/quota/ without credentials = %d, want 401", resp.StatusCode)
	}
	resp, body := get("/quota/", basic)
	if resp.StatusCode != 200 || !strings.Contains(body, "vendor/uplot/uPlot.iife.min.js") || !strings.Contains(body, "quota.js") {
		t.Fatalf("/quota/ = %d:\n%s", resp.StatusCode, body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("/quota/ Content-Security-Policy = %q", csp)
	}
	for _, asset := range []string{"/quota/quota.js", "/quota/vendor/uplot/uPlot.iife.min.js", "/quota/vendor/uplot/uPlot.min.css", "/quota/vendor/uplot/LICENSE"} {
		if resp, body := get(asset, basic); resp.StatusCode != 200 || len(body) == 0 {
			t.Errorf("%s = %d (%d bytes)", asset, resp.StatusCode, len(body))
		}
	}
	// asynqmon links to the quota page.
	if resp, body := get("/monitoring/", basic); resp.StatusCode != 200 || !strings.Contains(body, `href="/quota/"`) {
		t.Errorf("/monitoring/ = %d, want a link to /quota/", resp.StatusCode)
	}
	// The JSON behind the page takes the bearer token only, like all of /v1.
	if resp, _ := get("/v1/quota", basic); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/v1/quota with basic auth = %d, want 401", resp.StatusCode)
	}
	if resp, _ := get("/v1/quota", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }); resp.StatusCode != 200 {
		t.Errorf("/v1/quota with the bearer token = %d, want 200", resp.StatusCode)
	}
}

// addPool puts e's account in a pool with a second account, in tier 2
// (removed when t ends), and admits mine requests for e's account and
// theirs for the other through the limiter. It returns the pool's and the
// other account's names.
func (e *env) addPool(t *testing.T, mine, theirs int) (pool, other string) {
	t.Helper()
	ctx := context.Background()
	pool, other = e.account+"-pool", e.account+"-b"
	testutil.CleanupAccount(t, e.r.Client, other)
	t.Cleanup(func() {
		e.r.Client.SRem(ctx, keys.Pools(), pool)
		e.r.Client.Del(ctx, keys.Pool(pool))
	})
	if err := e.r.Client.HSet(ctx, keys.Pool(pool), e.account, 1, other, 2).Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.r.Client.SAdd(ctx, keys.Pools(), pool).Err(); err != nil {
		t.Fatal(err)
	}
	lim, err := quota.New(e.r.Client, quota.Config{RPM: 600, TPM: 100_000})
	if err != nil {
		t.Fatal(err)
	}
	for acct, n := range map[string]int{e.account: mine, other: theirs} {
		for range n {
			if d, err := lim.ReserveRequest(ctx, acct, quota.Input{Chars: 40}, 100); err != nil || !d.OK {
				t.Fatalf("reserve for %s: %+v %v", acct, d, err)
			}
		}
	}
	return pool, other
}

// TestQuotaPools: GET /v1/quota of an account in a pool holds the pool:
// both members by tier, the paused one paused, shares of today's requests
// that add up to 1.
func TestQuotaPools(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	pool, other := e.addPool(t, 1, 3)
	gate, err := pausegate.New(e.r.Client, pausegate.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gate.Pause(context.Background(), other, pausegate.PauseRequest{Reason: "manual pause", Kind: pausegate.KindManual}); err != nil {
		t.Fatal(err)
	}
	var rep QuotaReport
	e.doJSON(t, "GET", "/v1/quota?account="+e.account, "", "", http.StatusOK, &rep)
	p, ok := rep.Pools[pool]
	if !ok || len(p.Accounts) != 2 || p.RequestsToday != 4 {
		t.Fatalf("/v1/quota pools = %+v, want %s with two accounts and 4 requests", rep.Pools, pool)
	}
	a, b := p.Accounts[0], p.Accounts[1]
	if a.Account != e.account || a.Tier != 1 || a.State != status.StateActive || a.ShareToday == nil || *a.ShareToday != 0.25 {
		t.Errorf("first member %+v, want %s, tier 1, active, 0.25", a, e.account)
	}
	if b.Account != other || b.Tier != 2 || b.State != status.StatePaused || b.Pause.Reason != "manual pause" || b.ShareToday == nil || *b.ShareToday != 0.75 {
		t.Errorf("second member %+v, want %s, tier 2, paused, 0.75", b, other)
	}
	if _, ok := rep.Accounts[other]; ok {
		t.Errorf("/v1/quota?account=%s lists %s among its accounts", e.account, other)
	}
}
