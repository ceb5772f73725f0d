package httpapi

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/promptq/promptq/internal/status"
	"github.com/promptq/promptq/internal/testutil"
	"github.com/promptq/promptq/quota"
)

func TestTenants(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	ctx := context.Background()
	lim, err := quota.New(e.r.Client, quota.Config{})
	if err != nil {
		t.Fatal(err)
	}

	// No budget yet: an empty JSON list, not null.
	code, body := e.do(t, "GET", "/v1/tenants", "", "")
	if code != http.StatusOK || strings.TrimSpace(string(body)) != "[]" {
		t.Fatalf("GET /v1/tenants before any budget: %d %s, want 200 []", code, body)
	}
	e.problem(t, "GET", "/v1/tenants/team-a", "", "", http.StatusNotFound, CodeTenantNotFound)

	var tr TenantResponse
	e.doJSON(t, "PUT", "/v1/tenants/team-a", `{"rpm":60,"daily_requests":1000,"weight":3}`, "", http.StatusOK, &tr)
	want := status.TenantBudget{RPM: 60, DailyRequests: 1000, Weight: 3}
	if tr.Account != e.account || tr.Tenant != "team-a" || tr.Budget != want {
		t.Fatalf("PUT response = %+v", tr)
	}
	// Stored where workers read it.
	if ts, err := lim.Tenants(ctx, e.account); err != nil || len(ts) != 1 || ts[0].Budget != (quota.TenantBudget{RPM: 60, DailyRequests: 1000, Weight: 3}) {
		t.Fatalf("limiter sees %+v, %v", ts, err)
	}
	e.doJSON(t, "PUT", "/v1/tenants/team-b", `{"tpm":5000}`, "", http.StatusOK, nil)

	var ts []status.Tenant
	e.doJSON(t, "GET", "/v1/tenants", "", "", http.StatusOK, &ts)
	if len(ts) != 2 || ts[0].Tenant != "team-a" || ts[1].Tenant != "team-b" {
		t.Fatalf("list = %+v, want team-a and team-b", ts)
	}
	if ts[0].Budget != want || ts[0].RequestsAvailable <= 0 || ts[0].TokensAvailable != 0 ||
		ts[1].Budget != (status.TenantBudget{TPM: 5000}) || ts[1].TokensAvailable <= 0 {
		t.Fatalf("list = %+v", ts)
	}
	var one status.Tenant
	e.doJSON(t, "GET", "/v1/tenants/team-b", "", "", http.StatusOK, &one)
	if one.Tenant != "team-b" || one.Budget.TPM != 5000 {
		t.Fatalf("GET team-b = %+v", one)
	}

	// PUT replaces the whole budget: fields left out are no budget.
	e.doJSON(t, "PUT", "/v1/tenants/team-a", `{"tpm":100}`, "", http.StatusOK, nil)
	e.doJSON(t, "GET", "/v1/tenants", "", "", http.StatusOK, &ts)
	if len(ts) != 2 || ts[0].Budget != (status.TenantBudget{TPM: 100}) {
		t.Fatalf("after replacing team-a: %+v", ts)
	}

	if code, b := e.do(t, "DELETE", "/v1/tenants/team-a", "", ""); code != http.StatusNoContent {
		t.Fatalf("DELETE team-a: %d %s", code, b)
	}
	e.problem(t, "DELETE", "/v1/tenants/team-a", "", "", http.StatusNotFound, CodeTenantNotFound)
	if code, b := e.do(t, "DELETE", "/v1/tenants/team-b", "", ""); code != http.StatusNoContent {
		t.Fatalf("DELETE team-b: %d %s", code, b)
	}
	if ts, err := lim.Tenants(ctx, e.account); err != nil || len(ts) != 0 {
		t.Fatalf("limiter still sees %+v, %v", ts, err)
	}
}

// An account is named with ?account=; one that is not known is refused with
// 404 on every route, and nothing is written for it.
func TestUnknownAccountRefused(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	other := testutil.Name(t) + "-o"
	testutil.CleanupAccount(t, e.r.Client, other)
	for _, p := range []struct{ method, path, body string }{
		{"PUT", "/v1/tenants/t1?account=" + other, `{"rpm":10}`},
		{"GET", "/v1/tenants?account=" + other, ""},
		{"GET", "/v1/tenants/t1?account=" + other, ""},
		{"DELETE", "/v1/tenants/t1?account=" + other, ""},
		{"POST", "/v1/pause?account=" + other, `{"for":"1m"}`},
		{"POST", "/v1/resume?account=" + other, ""},
		{"GET", "/v1/status?account=" + other, ""},
	} {
		if pr := e.problem(t, p.method, p.path, p.body, "", http.StatusNotFound, CodeAccountNotFound); pr.Field != "account" {
			t.Errorf("%s %s: %+v", p.method, p.path, pr)
		}
	}
	if n, err := e.r.Client.Keys(context.Background(), "*"+other+"*").Result(); err != nil || len(n) != 0 {
		t.Fatalf("keys written for the unknown account: %v %v", n, err)
	}
	// The known one works the same way.
	e.doJSON(t, "PUT", "/v1/tenants/t1?account="+e.account, `{"rpm":10}`, "", http.StatusOK, nil)
}

func TestTenantValidation(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	tests := []struct {
		method, path, body, field string
	}{
		{"PUT", "/v1/tenants/t", `{"rpm":-1}`, "rpm"},
		{"PUT", "/v1/tenants/t", `{"rpm":5,"tpm":-1}`, "tpm"},
		{"PUT", "/v1/tenants/t", `{"daily_requests":-3}`, "daily_requests"},
		{"PUT", "/v1/tenants/t", `{"rpm":5,"weight":1001}`, "weight"},
		{"PUT", "/v1/tenants/t", `{"rpm":5,"weight":-1}`, "weight"},
		{"PUT", "/v1/tenants/t", `{"rpm":"60"}`, "rpm"},
		{"PUT", "/v1/tenants/t", `{"rpm":1.5}`, "rpm"},
		{"PUT", "/v1/tenants/t", `{}`, "body"},
		{"PUT", "/v1/tenants/t", ``, "body"},
		{"PUT", "/v1/tenants/t", `{"rpm":0,"tpm":0}`, "body"},
		{"PUT", "/v1/tenants/t", `{"rpms":60}`, "body"},
		{"PUT", "/v1/tenants/t", `{"rpm":60} {}`, "body"},
		{"PUT", "/v1/tenants/t", `[60]`, "body"},
		{"PUT", "/v1/tenants/bad%7Bname%7D", `{"rpm":60}`, "tenant"},
		{"PUT", "/v1/tenants/a%2Fb", `{"rpm":60}`, "tenant"},
		{"PUT", "/v1/tenants/" + strings.Repeat("x", 65), `{"rpm":60}`, "tenant"},
		{"PUT", "/v1/tenants/t?account=bad%7Bacct%7D", `{"rpm":60}`, "account"},
		{"DELETE", "/v1/tenants/bad%7Bname%7D", "", "tenant"},
		{"DELETE", "/v1/tenants/t?account=bad%7Bacct%7D", "", "account"},
		{"GET", "/v1/tenants?account=bad%7Bacct%7D", "", "account"},
	}
	for _, tt := range tests {
		var p Problem
		e.doJSON(t, tt.method, tt.path, tt.body, "", http.StatusBadRequest, &p)
		if p.Field != tt.field || p.Detail == "" || (p.Code != CodeInvalidField && p.Code != CodeInvalidJSON) {
			t.Errorf("%s %s %s: problem %+v, want field %q", tt.method, tt.path, tt.body, p, tt.field)
		}
		for _, goName := range []string{"int64", "float64", "quota.", "httpapi."} {
			if strings.Contains(p.Detail, goName) {
				t.Errorf("%s %s %s: detail %q names Go's %q", tt.method, tt.path, tt.body, p.Detail, goName)
			}
		}
	}
	if ts, err := e.srv.lim.Tenants(context.Background(), e.account); err != nil || len(ts) != 0 {
		t.Fatalf("a rejected request stored a budget: %+v %v", ts, err)
	}
	e.problem(t, "POST", "/v1/tenants/t", `{"rpm":60}`, "", http.StatusMethodNotAllowed, CodeMethodNotAllowed)
	e.problem(t, "POST", "/v1/tenants", `{"rpm":60}`, "", http.StatusMethodNotAllowed, CodeMethodNotAllowed)
}

func TestTenantAccountChoice(t *testing.T) {
	t.Parallel()
	var two *env
	two = setup(t, func(c *Config) {
		c.Accounts = func(context.Context) ([]string, error) { return []string{two.account, "acct-b"}, nil }
	})
	for _, p := range []struct{ method, path, body string }{
		{"GET", "/v1/tenants", ""},
		{"PUT", "/v1/tenants/t", `{"rpm":60}`},
		{"DELETE", "/v1/tenants/t", ""},
	} {
		if pr := two.problem(t, p.method, p.path, p.body, "", http.StatusBadRequest, CodeAccountRequired); pr.Field != "account" || !strings.Contains(pr.Detail, "?account=") {
			t.Errorf("%s %s with two accounts known: %+v", p.method, p.path, pr)
		}
	}
	two.doJSON(t, "GET", "/v1/tenants?account="+two.account, "", "", http.StatusOK, nil)

	none := setup(t, func(c *Config) {
		c.Accounts = func(context.Context) ([]string, error) { return nil, nil }
	})
	none.problem(t, "PUT", "/v1/tenants/t", `{"rpm":60}`, "", http.StatusConflict, CodeNoAccount)
	none.problem(t, "POST", "/v1/pause", `{}`, "", http.StatusConflict, CodeNoAccount)
}
