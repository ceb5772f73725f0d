package httpapi

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

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
