package httpapi

import (
	"context"
	"net/http"
	"strings"
	"testing"

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

	var tr TenantResponse
	e.doJSON(t, "PUT", "/v1/tenants/team-a", `{"rpm":60,"daily_requests":1000,"weight":3}`, "", http.StatusOK, &tr)
	want := quota.TenantBudget{RPM: 60, DailyRequests: 1000, Weight: 3}
	if tr.Account != e.account || tr.Tenant != "team-a" || tr.Budget != want {
		t.Fatalf("PUT response = %+v", tr)
	}
	// Stored where workers read it.
	if ts, err := lim.Tenants(ctx, e.account); err != nil || len(ts) != 1 || ts[0].Budget != want {
		t.Fatalf("limiter sees %+v, %v; want team-a %+v", ts, err, want)
	}
	e.doJSON(t, "PUT", "/v1/tenants/team-b", `{"tpm":5000}`, "", http.StatusOK, nil)

	var ts []quota.TenantState
	e.doJSON(t, "GET", "/v1/tenants", "", "", http.StatusOK, &ts)
	if len(ts) != 2 || ts[0].Tenant != "team-a" || ts[1].Tenant != "team-b" {
		t.Fatalf("list = %+v, want team-a and team-b", ts)
	}
	// Each with its use: a full RPM bucket and no TPM one for team-a.
	if ts[0].Budget != want || ts[0].Requests <= 0 || ts[0].Tokens != 0 ||
		ts[1].Budget != (quota.TenantBudget{TPM: 5000}) || ts[1].Tokens <= 0 {
		t.Fatalf("list = %+v", ts)
	}

	// PUT replaces the whole budget: fields left out are no budget.
	e.doJSON(t, "PUT", "/v1/tenants/team-a", `{"tpm":100}`, "", http.StatusOK, nil)
	ts = nil // budget fields are omitted when 0: decode afresh
	e.doJSON(t, "GET", "/v1/tenants", "", "", http.StatusOK, &ts)
	if len(ts) != 2 || ts[0].Budget != (quota.TenantBudget{TPM: 100}) {
		t.Fatalf("after replacing team-a: %+v", ts)
	}

	var dr DeleteTenantResponse
	e.doJSON(t, "DELETE", "/v1/tenants/team-a", "", "", http.StatusOK, &dr)
	if !dr.Deleted || dr.Tenant != "team-a" || dr.Account != e.account {
		t.Fatalf("delete = %+v", dr)
	}
	e.doJSON(t, "DELETE", "/v1/tenants/team-a", "", "", http.StatusOK, &dr)
	if dr.Deleted {
		t.Fatalf("second delete = %+v, want deleted false", dr)
	}
	e.doJSON(t, "DELETE", "/v1/tenants/team-b", "", "", http.StatusOK, &dr)
	if !dr.Deleted {
		t.Fatalf("delete team-b = %+v", dr)
	}
	code, body = e.do(t, "GET", "/v1/tenants", "", "")
	if code != http.StatusOK || strings.TrimSpace(string(body)) != "[]" {
		t.Fatalf("GET /v1/tenants after delete: %d %s, want 200 []", code, body)
	}
	if ts, err := lim.Tenants(ctx, e.account); err != nil || len(ts) != 0 {
		t.Fatalf("limiter still sees %+v, %v", ts, err)
	}
}

func TestTenantsOtherAccount(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	other := testutil.Name(t) + "-o"
	testutil.CleanupAccount(t, e.r.Client, other)

	var tr TenantResponse
	e.doJSON(t, "PUT", "/v1/tenants/t1?account="+other, `{"rpm":10}`, "", http.StatusOK, &tr)
	if tr.Account != other {
		t.Fatalf("PUT ?account=%s stored under %q", other, tr.Account)
	}
	var ts []quota.TenantState
	e.doJSON(t, "GET", "/v1/tenants", "", "", http.StatusOK, &ts)
	if len(ts) != 0 {
		t.Fatalf("default account lists %+v, want none", ts)
	}
	e.doJSON(t, "GET", "/v1/tenants?account="+other, "", "", http.StatusOK, &ts)
	if len(ts) != 1 || ts[0].Tenant != "t1" || ts[0].Budget.RPM != 10 {
		t.Fatalf("?account=%s lists %+v", other, ts)
	}
	var dr DeleteTenantResponse
	e.doJSON(t, "DELETE", "/v1/tenants/t1", "", "", http.StatusOK, &dr)
	if dr.Deleted {
		t.Fatal("DELETE without ?account deleted the other account's tenant")
	}
	e.doJSON(t, "DELETE", "/v1/tenants/t1?account="+other, "", "", http.StatusOK, &dr)
	if !dr.Deleted {
		t.Fatalf("DELETE ?account=%s = %+v", other, dr)
	}
}

func TestTenantValidation(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	tests := []struct {
		method, path, body, field string
		named                     bool // the message itself names the field
	}{
		{"PUT", "/v1/tenants/t", `{"rpm":-1}`, "rpm", true},
		{"PUT", "/v1/tenants/t", `{"rpm":5,"tpm":-1}`, "tpm", true},
		{"PUT", "/v1/tenants/t", `{"daily_requests":-3}`, "daily_requests", true},
		{"PUT", "/v1/tenants/t", `{"rpm":5,"weight":1001}`, "weight", true},
		{"PUT", "/v1/tenants/t", `{"rpm":5,"weight":-1}`, "weight", true},
		{"PUT", "/v1/tenants/t", `{"rpm":"60"}`, "rpm", false},
		{"PUT", "/v1/tenants/t", `{"rpm":1.5}`, "rpm", false},
		{"PUT", "/v1/tenants/t", `{}`, "body", false},
		{"PUT", "/v1/tenants/t", ``, "body", false},
		{"PUT", "/v1/tenants/t", `{"rpm":0,"tpm":0}`, "body", false},
		{"PUT", "/v1/tenants/t", `{"rpms":60}`, "body", false},
		{"PUT", "/v1/tenants/t", `{"rpm":60} {}`, "body", false},
		{"PUT", "/v1/tenants/t", `[60]`, "body", false},
		{"PUT", "/v1/tenants/bad%7Bname%7D", `{"rpm":60}`, "tenant", true},
		{"PUT", "/v1/tenants/a%2Fb", `{"rpm":60}`, "tenant", true},
		{"PUT", "/v1/tenants/" + strings.Repeat("x", 65), `{"rpm":60}`, "tenant", true},
		{"PUT", "/v1/tenants/t?account=bad%7Bacct%7D", `{"rpm":60}`, "account", true},
		{"DELETE", "/v1/tenants/bad%7Bname%7D", "", "tenant", true},
		{"DELETE", "/v1/tenants/t?account=bad%7Bacct%7D", "", "account", true},
		{"GET", "/v1/tenants?account=bad%7Bacct%7D", "", "account", true},
	}
	for _, tt := range tests {
		var ae apiError
		e.doJSON(t, tt.method, tt.path, tt.body, "", http.StatusBadRequest, &ae)
		if ae.Field != tt.field || ae.Error == "" {
			t.Errorf("%s %s %s: error %+v, want field %q", tt.method, tt.path, tt.body, ae, tt.field)
		}
		// The message names what is wrong, for clients that show only it.
		if tt.named && !strings.Contains(ae.Error, tt.field) {
			t.Errorf("%s %s %s: message %q does not name %q", tt.method, tt.path, tt.body, ae.Error, tt.field)
		}
	}
	if ts, err := e.srv.lim.Tenants(context.Background(), e.account); err != nil || len(ts) != 0 {
		t.Fatalf("a rejected request stored a budget: %+v %v", ts, err)
	}

	// Only PUT and DELETE on a tenant, only GET on the list.
	code, body := e.do(t, "POST", "/v1/tenants/t", `{"rpm":60}`, "")
	if code != http.StatusMethodNotAllowed || !strings.Contains(string(body), `"error"`) {
		t.Fatalf("POST /v1/tenants/t: %d %s, want 405", code, body)
	}
	e.doJSON(t, "POST", "/v1/tenants", `{"rpm":60}`, "", http.StatusMethodNotAllowed, nil)
}

func TestTenantAccountChoice(t *testing.T) {
	t.Parallel()
	two := setup(t, func(c *Config) {
		c.Accounts = func(context.Context) ([]string, error) { return []string{"acct-a", "acct-b"}, nil }
	})
	for _, p := range []struct{ method, path, body string }{
		{"GET", "/v1/tenants", ""},
		{"PUT", "/v1/tenants/t", `{"rpm":60}`},
		{"DELETE", "/v1/tenants/t", ""},
	} {
		var ae apiError
		two.doJSON(t, p.method, p.path, p.body, "", http.StatusBadRequest, &ae)
		if ae.Field != "account" || !strings.Contains(ae.Error, "?account=") {
			t.Errorf("%s %s with two accounts known: %+v, want an error on account", p.method, p.path, ae)
		}
	}
	// Naming the account works whatever is known.
	two.doJSON(t, "GET", "/v1/tenants?account="+two.account, "", "", http.StatusOK, nil)

	none := setup(t, func(c *Config) {
		c.Accounts = func(context.Context) ([]string, error) { return nil, nil }
	})
	var ae apiError
	none.doJSON(t, "PUT", "/v1/tenants/t", `{"rpm":60}`, "", http.StatusConflict, &ae)
	if ae.Field != "account" {
		t.Fatalf("PUT with no account known: %+v", ae)
	}
}
