package fakeopenai

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/promptq/promptq/internal/clock"
)

// accountsFixture is a multi-account fake behind an httptest server, with a
// fake clock and one openai-go client per account (retries off).
type accountsFixture struct {
	accts   *Accounts
	srv     *httptest.Server
	clk     *clock.Fake
	clients map[string]*openai.Client
}

func setupAccounts(t *testing.T, base Config, specs ...AccountSpec) *accountsFixture {
	t.Helper()
	clk := clock.NewFake(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
	base.Clock = clk.Now
	base.APIKey = testKey
	accts, err := NewAccounts(base, specs)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(accts)
	t.Cleanup(srv.Close)
	f := &accountsFixture{accts: accts, srv: srv, clk: clk, clients: map[string]*openai.Client{}}
	for _, name := range accts.Names() {
		c := openai.NewClient(
			option.WithBaseURL(srv.URL+"/"+name+"/v1"),
			option.WithAPIKey(testKey),
			option.WithMaxRetries(0),
		)
		f.clients[name] = &c
	}
	return f
}

// do sends a request and returns the status and body.
func (f *accountsFixture) do(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestAccountsLimitedIndependently(t *testing.T) {
	f := setupAccounts(t, Config{RPM: 100},
		AccountSpec{Name: "east", RPM: 2},
		AccountSpec{Name: "west", RPM: 3, TPM: 50_000},
		AccountSpec{Name: "base"}, // keeps the base's RPM 100
	)
	ctx := context.Background()
	for name, limit := range map[string]int{"east": 2, "west": 3} {
		c := f.clients[name]
		for i := range limit {
			if _, err := c.Responses.New(ctx, respParams("hi")); err != nil {
				t.Fatalf("%s request %d: %v", name, i, err)
			}
		}
		var raw *http.Response
		_, err := c.Responses.New(ctx, respParams("hi"), option.WithResponseInto(&raw))
		apiErr(t, err, 429, "rate_limit_exceeded")
		wantHeader(t, raw.Header, "x-ratelimit-limit-requests", strconv.Itoa(limit))
	}
	// The base account has its own bucket, untouched by the others.
	var raw *http.Response
	if _, err := f.clients["base"].Responses.New(ctx, respParams("hi"), option.WithResponseInto(&raw)); err != nil {
		t.Fatal(err)
	}
	wantHeader(t, raw.Header, "x-ratelimit-remaining-requests", "99")

	for name, want := range map[string]Stats{
		"east": {Requests: 3, OK: 2, RateLimited: 1},
		"west": {Requests: 4, OK: 3, RateLimited: 1},
		"base": {Requests: 1, OK: 1},
	} {
		st := f.accts.Account(name).Stats()
		if st.Requests != want.Requests || st.OK != want.OK || st.RateLimited != want.RateLimited {
			t.Errorf("%s: requests %d ok %d rate limited %d, want %+v", name, st.Requests, st.OK, st.RateLimited, want)
		}
	}
	if l := f.accts.Account("west").Limits(); l != (Limits{RPM: 3, TPM: 50_000}) {
		t.Errorf("west limits = %+v", l)
	}

	// One minute refills east only as far as its own limit.
	f.clk.Advance(time.Minute)
	if sm := f.accts.Account("east").Sample(); sm.RequestLevel != 2 {
		t.Errorf("east level after a minute = %v, want 2", sm.RequestLevel)
	}
}

func TestAccountsModePerAccount(t *testing.T) {
	f := setupAccounts(t, Config{}, AccountSpec{Name: "east"}, AccountSpec{Name: "west"})
	ctx := context.Background()

	if code, body := f.do(t, "POST", "/_fake/mode?account=east", `{"mode":"insufficient_quota"}`); code != 200 || !strings.Contains(body, `"insufficient_quota"`) {
		t.Fatalf("set mode: %d %s", code, body)
	}
	for range 3 {
		_, err := f.clients["east"].Responses.New(ctx, respParams("x"))
		apiErr(t, err, 429, "insufficient_quota")
		if _, err := f.clients["west"].Responses.New(ctx, respParams("x")); err != nil {
			t.Fatalf("west: %v", err)
		}
	}
	east, west := f.accts.Account("east").Stats(), f.accts.Account("west").Stats()
	if east.QuotaErrors != 3 || east.RequestsAfterFirstQuotaError != 2 || east.OK != 0 {
		t.Errorf("east stats = %+v", east)
	}
	if west.QuotaErrors != 0 || west.OK != 3 || west.FirstQuotaErrorAt != "" {
		t.Errorf("west stats = %+v", west)
	}

	// Without ?account=, GETs answer an object keyed by account.
	if code, body := f.do(t, "GET", "/_fake/mode", ""); code != 200 || body != `{"east":{"mode":"insufficient_quota"},"west":{"mode":"normal"}}`+"\n" {
		t.Errorf("GET mode: %d %s", code, body)
	}
	code, body := f.do(t, "GET", "/_fake/stats", "")
	var all map[string]Stats
	if err := json.Unmarshal([]byte(body), &all); code != 200 || err != nil || all["east"].QuotaErrors != 3 || all["west"].OK != 3 {
		t.Errorf("GET stats: %d %v %s", code, err, body)
	}
	if code, body := f.do(t, "GET", "/_fake/stats?account=west", ""); code != 200 || !strings.Contains(body, `"ok":3`) {
		t.Errorf("GET stats west: %d %s", code, body)
	}
	// The per-account prefix reaches the account's own admin endpoints too.
	if code, body := f.do(t, "GET", "/west/_fake/mode", ""); code != 200 || body != `{"mode":"normal"}`+"\n" {
		t.Errorf("GET /west/_fake/mode: %d %s", code, body)
	}

	// Limits: one account at a time; all at once is refused.
	if code, body := f.do(t, "POST", "/_fake/limits?account=west", `{"rpm":7}`); code != 200 || body != `{"rpm":7,"tpm":0}`+"\n" {
		t.Errorf("POST limits west: %d %s", code, body)
	}
	if code, _ := f.do(t, "POST", "/_fake/limits", `{"rpm":7}`); code != 400 {
		t.Errorf("POST limits without account: %d, want 400", code)
	}
	if code, body := f.do(t, "GET", "/_fake/limits", ""); code != 200 || body != `{"east":{"rpm":0,"tpm":0},"west":{"rpm":7,"tpm":0}}`+"\n" {
		t.Errorf("GET limits: %d %s", code, body)
	}

	// Mode and reset without ?account= act on every account.
	if code, body := f.do(t, "POST", "/_fake/mode", `{"mode":"normal"}`); code != 200 || body != `{"east":{"mode":"normal"},"west":{"mode":"normal"}}`+"\n" {
		t.Errorf("POST mode all: %d %s", code, body)
	}
	if code, _ := f.do(t, "POST", "/_fake/mode", `{"mode":"bogus"}`); code != 400 {
		t.Errorf("bogus mode: %d", code)
	}
	if code, _ := f.do(t, "POST", "/_fake/reset", ""); code != 200 {
		t.Errorf("reset: %d", code)
	}
	for _, name := range f.accts.Names() {
		if st := f.accts.Account(name).Stats(); st.Requests != 0 {
			t.Errorf("%s after reset: %+v", name, st)
		}
	}
}

func TestAccountsUnknown(t *testing.T) {
	f := setupAccounts(t, Config{}, AccountSpec{Name: "east"}, AccountSpec{Name: "west"})
	for _, tc := range []struct{ method, path string }{
		{"POST", "/nope/v1/responses"},
		{"POST", "/v1/responses"}, // no account prefix
		{"GET", "/_fake/stats?account=nope"},
		{"POST", "/_fake/mode?account=nope"},
		{"GET", "/_fake/bogus"},
	} {
		code, body := f.do(t, tc.method, tc.path, `{"mode":"normal"}`)
		var e struct {
			Error struct {
				Message string  `json:"message"`
				Type    string  `json:"type"`
				Code    *string `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(body), &e); code != 404 || err != nil || e.Error.Type != "invalid_request_error" ||
			!strings.HasPrefix(e.Error.Message, "Invalid URL ("+tc.method+" ") || !strings.Contains(e.Error.Message, "accounts: east, west.") {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, code, body)
		}
	}
	// The real client sees an OpenAI 404.
	c := openai.NewClient(option.WithBaseURL(f.srv.URL+"/nope/v1"), option.WithAPIKey(testKey), option.WithMaxRetries(0))
	_, err := c.Responses.New(context.Background(), respParams("x"))
	if e := apiErr(t, err, 404, ""); !strings.Contains(e.Message, `no account "nope"`) {
		t.Errorf("message %q", e.Message)
	}
	if code, body := f.do(t, "GET", "/healthz", ""); code != 200 || body != "ok\n" {
		t.Errorf("healthz: %d %q", code, body)
	}
}

func TestFaultModesPerAccount(t *testing.T) {
	f := setupAccounts(t, Config{},
		AccountSpec{Name: "revoked", Mode: ModeUnauthorized},
		AccountSpec{Name: "lost", Mode: ModeModelNotFound},
		AccountSpec{Name: "mini", Models: []string{"gpt-4o-mini", "gpt-4.1"}},
		AccountSpec{Name: "ok"},
	)
	ctx := context.Background()

	// 401 invalid_api_key, the key masked as OpenAI does.
	code, body := f.do(t, "POST", "/revoked/v1/responses", `{"model":"gpt-4o-mini","input":"x"}`)
	wantBody := `{"error":{"message":"Incorrect API key provided: sk-*****6789. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}` + "\n"
	if code != 401 || body != wantBody {
		t.Errorf("unauthorized: %d %s", code, body)
	}
	if strings.Contains(body, testKey) {
		t.Error("the key is echoed whole")
	}
	_, err := f.clients["revoked"].Chat.Completions.New(ctx, chatParams("x"))
	apiErr(t, err, 401, "invalid_api_key")
	if st := f.accts.Account("revoked").Stats(); st.AuthErrors != 2 || st.Requests != 2 {
		t.Errorf("revoked stats = %+v", st)
	}

	// 404 model_not_found, whatever the model.
	code, body = f.do(t, "POST", "/lost/v1/chat/completions", `{"model":"gpt-x","messages":[{"role":"user","content":"x"}]}`)
	wantBody = "{\"error\":{\"message\":\"The model `gpt-x` does not exist or you do not have access to it.\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"model_not_found\"}}\n"
	if code != 404 || body != wantBody {
		t.Errorf("model not found: %d %s", code, body)
	}
	_, err = f.clients["lost"].Responses.New(ctx, respParams("x"))
	apiErr(t, err, 404, "model_not_found")

	// A model list: other models are not found.
	if _, err := f.clients["mini"].Responses.New(ctx, respParams("x")); err != nil {
		t.Fatal(err)
	}
	p := respParams("x")
	p.Model = "gpt-4o"
	_, err = f.clients["mini"].Responses.New(ctx, p)
	if e := apiErr(t, err, 404, "model_not_found"); !strings.Contains(e.Message, "`gpt-4o`") {
		t.Errorf("message %q", e.Message)
	}
	if st := f.accts.Account("mini").Stats(); st.OK != 1 || st.BadRequests != 1 {
		t.Errorf("mini stats = %+v", st)
	}

	// The other account is untouched; a mode set over HTTP ends as usual.
	if _, err := f.clients["ok"].Responses.New(ctx, p); err != nil {
		t.Fatal(err)
	}
	f.do(t, "POST", "/_fake/mode?account=ok", `{"mode":"unauthorized","for":"5s"}`)
	_, err = f.clients["ok"].Responses.New(ctx, p)
	apiErr(t, err, 401, "invalid_api_key")
	f.clk.Advance(5 * time.Second)
	if _, err := f.clients["ok"].Responses.New(ctx, p); err != nil {
		t.Fatalf("mode did not revert: %v", err)
	}
}

func TestNewAccountsOverrides(t *testing.T) {
	base := Config{RPM: 10, TPM: 1000, Latency: time.Second, Charge: ChargeChars, APIKey: "sk-base", Models: []string{"m"}}
	a, err := NewAccounts(base, []AccountSpec{
		{Name: "same"},
		{Name: "diff", RPM: 20, TPM: Unlimited, Latency: NoLatency, Charge: ChargeTokenizer, APIKey: "sk-diff", Models: []string{"n"}, Mode: ModeSlow},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Names(); len(got) != 2 || got[0] != "same" || got[1] != "diff" {
		t.Errorf("Names() = %v", got)
	}
	same, diff := a.Account("same"), a.Account("diff")
	if c := same.cfg; c.RPM != 10 || c.TPM != 1000 || c.Latency != time.Second || c.Charge != ChargeChars || c.APIKey != "sk-base" || c.Models[0] != "m" || same.Mode() != ModeNormal {
		t.Errorf("same = %+v", c)
	}
	if c := diff.cfg; c.RPM != 20 || c.TPM != 0 || c.Latency != 0 || c.Charge != ChargeTokenizer || c.APIKey != "sk-diff" || c.Models[0] != "n" || diff.Mode() != ModeSlow {
		t.Errorf("diff = %+v", c)
	}
	if a.Account("nope") != nil {
		t.Error("Account(nope) != nil")
	}

	for _, tc := range []struct {
		name    string
		base    Config
		specs   []AccountSpec
		wantErr string
	}{
		{"none", Config{}, nil, "at least one account"},
		{"twice", Config{}, []AccountSpec{{Name: "a"}, {Name: "a"}}, "account a given twice"},
		{"bad name", Config{}, []AccountSpec{{Name: "a/b"}}, "account name must match"},
		{"bad rpm", Config{}, []AccountSpec{{Name: "a", RPM: -2}}, "account a: RPM must be >= 0"},
		{"bad mode", Config{}, []AccountSpec{{Name: "a", Mode: "x"}}, "unknown Mode"},
		{"bad base", Config{RPM: -1}, []AccountSpec{{Name: "a"}}, "RPM must be >= 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewAccounts(tc.base, tc.specs)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}
