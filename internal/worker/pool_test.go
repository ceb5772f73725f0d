package worker

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/promptq/promptq/internal/fakeopenai"
	"github.com/promptq/promptq/internal/provider"
	"github.com/promptq/promptq/internal/testutil"
	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/quota"
	"github.com/promptq/promptq/quota/backoff"
)

func TestChoose(t *testing.T) {
	a, b, c := &target{name: "a", tier: 1, weight: 1}, &target{name: "b", tier: 1, weight: 1}, &target{name: "c", tier: 2, weight: 1}
	fits := func(name string, wait time.Duration) quota.Headroom {
		return quota.Headroom{Account: name, Fits: true, Wait: wait, Requests: 1, Tokens: 1}
	}
	window := 2 * time.Second
	for _, tc := range []struct {
		name      string
		hs        []quota.Headroom
		want      string // "" = none
		wantLimit time.Duration
		soon      bool
		wait      time.Duration
	}{
		{"soonest of the tier", []quota.Headroom{fits("a", 800*time.Millisecond), fits("b", 100*time.Millisecond), fits("c", 0)},
			"b", 800*time.Millisecond + NearTie, true, 0},
		{"better tier within the window beats an idle lower tier", []quota.Headroom{fits("a", 1900*time.Millisecond), {Account: "b", Paused: true}, fits("c", 0)},
			"a", window, true, 0},
		{"spill when the tier cannot admit within the window", []quota.Headroom{fits("a", 3*time.Second), fits("b", 2500*time.Millisecond), fits("c", 300*time.Millisecond)},
			"c", window, true, 300 * time.Millisecond},
		{"a probe of the better tier holds the request there", []quota.Headroom{{Account: "a", Probe: true, Wait: 50 * time.Millisecond}, {Account: "b", Paused: true}, fits("c", 0)},
			"", 0, true, 50 * time.Millisecond},
		{"nothing within the window", []quota.Headroom{fits("a", 3*time.Second), fits("b", 4*time.Second), fits("c", 5*time.Second)},
			"", 0, true, 3 * time.Second},
		{"all refuse", []quota.Headroom{{Account: "a", Paused: true}, {Account: "b", DailyExhausted: true}, {Account: "c", ModelPaused: true}},
			"", 0, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pk := choose([]*target{a, b, c}, tc.hs, window, time.Now())
			got := ""
			if pk.route != nil {
				got = pk.route.name
			}
			if got != tc.want || pk.soon != tc.soon || (tc.want != "" && pk.limit != tc.wantLimit) || (tc.want == "" && pk.wait != tc.wait) {
				t.Errorf("choose = %q limit %v soon %v wait %v; want %q limit %v soon %v wait %v",
					got, pk.limit, pk.soon, pk.wait, tc.want, tc.wantLimit, tc.soon, tc.wait)
			}
		})
	}
	large := []quota.Headroom{{Account: "a", TooLarge: true}, {Account: "b", TooLarge: true}, {Account: "c", TooLarge: true}}
	if pk := choose([]*target{a, b, c}, large, window, time.Now()); !pk.tooLarge || pk.route != nil {
		t.Errorf("every account too large: %+v", pk)
	}
}

// TestChooseShares: accounts equally soon share by weight times free headroom.
func TestChooseShares(t *testing.T) {
	a, b := &target{name: "a", tier: 1, weight: 3}, &target{name: "b", tier: 1, weight: 1}
	hs := []quota.Headroom{{Account: "a", Fits: true, Requests: 1, Tokens: 1}, {Account: "b", Fits: true, Requests: 1, Tokens: 1}}
	n := map[string]int{}
	for range 4000 {
		n[choose([]*target{a, b}, hs, time.Second, time.Now()).route.name]++
	}
	if share := float64(n["a"]) / 4000; share < 0.7 || share > 0.8 {
		t.Errorf("weight 3:1 gave a %.2f of the picks, want ~0.75", share)
	}
	hs[0].Tokens = 0.1 // a has a tenth of its tokens left: 3*0.1 vs 1*1
	n = map[string]int{}
	for range 4000 {
		n[choose([]*target{a, b}, hs, time.Second, time.Now()).route.name]++
	}
	if share := float64(n["a"]) / 4000; share < 0.18 || share > 0.28 {
		t.Errorf("a nearly drained gave it %.2f of the picks, want ~0.23", share)
	}
}

type poolFixture struct {
	h     *Handler
	gate  *pausegate.Gate
	fakes map[string]*fakeopenai.Server
	names []string
}

// setupPool is a pool handler over accounts with the given tiers, each with
// its own fake provider (or the given HTTP handler).
func setupPool(t *testing.T, tiers []int, handlers map[int]http.Handler) *poolFixture {
	t.Helper()
	r := testutil.NewRedis(t)
	g, err := pausegate.New(r.Client, pausegate.Config{})
	if err != nil {
		t.Fatal(err)
	}
	f := &poolFixture{gate: g, fakes: map[string]*fakeopenai.Server{}}
	peek := poolPeek{rdb: r.Client, lims: map[string]*quota.Limiter{}}
	var routes []Route
	for i, tier := range tiers {
		name := testutil.Name(t)
		testutil.CleanupAccount(t, r.Client, name)
		var hh http.Handler
		if handlers[i] != nil {
			hh = handlers[i]
		} else {
			fake := fakeopenai.New(fakeopenai.Config{RPM: 600})
			f.fakes[name], hh = fake, fake
		}
		srv := httptest.NewServer(hh)
		t.Cleanup(srv.Close)
		lim, err := quota.New(r.Client, quota.Config{Schedule: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		peek.lims[name] = lim
		routes = append(routes, Route{Account: name, Tier: tier, Limiter: lim,
			Client: provider.New(provider.Config{BaseURL: srv.URL + "/v1", APIKey: "sk-test"})})
		f.names = append(f.names, name)
	}
	f.h = NewPoolHandler(HandlerConfig{Account: "pool", QuotaControl: true}, routes, g, peek)
	return f
}

// TestPoolFailoverQuota: an account out of quota drops out of the pool; its
// task goes to the next account in the same ProcessTask, spending no retry,
// and later tasks go straight there.
func TestPoolFailoverQuota(t *testing.T) {
	f := setupPool(t, []int{1, 2}, nil)
	a, b := f.names[0], f.names[1]
	f.fakes[a].SetMode(fakeopenai.ModeInsufficientQuota, 0)
	for range 4 {
		if err := f.h.ProcessTask(context.Background(), task(`{"model":"m","input":"hello","max_output_tokens":32}`)); err != nil {
			t.Fatalf("ProcessTask: %v; want the task served by the other account", err)
		}
	}
	if n := f.fakes[a].Stats().Requests; n != 1 {
		t.Errorf("the account out of quota got %d requests, want 1 (none after its quota error)", n)
	}
	if n := f.fakes[b].Stats().OK; n != 4 {
		t.Errorf("the other account served %d tasks, want 4", n)
	}
	if rec, active, err := f.gate.Check(context.Background(), a); err != nil || !active || rec.Kind != pausegate.KindQuota {
		t.Errorf("account out of quota: pause %+v active %v (%v), want a quota pause", rec, active, err)
	}
	// Both out: the task waits for the pauses without spending a retry.
	f.fakes[b].SetMode(fakeopenai.ModeInsufficientQuota, 0)
	err := f.h.ProcessTask(context.Background(), task(`{"model":"m","input":"hello","max_output_tokens":32}`))
	if err == nil || backoff.IsFailure(err) {
		t.Errorf("every account out of quota: %v; want a wait that spends no retry", err)
	}
}

// TestPoolModelNotFound: an account that does not serve a model is paused
// for that model alone, and the task goes to another account.
func TestPoolModelNotFound(t *testing.T) {
	notFound := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":{"message":"The model ` + "`m`" + ` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}}`))
	})
	f := setupPool(t, []int{1, 2}, map[int]http.Handler{0: notFound})
	a, b := f.names[0], f.names[1]
	if err := f.h.ProcessTask(context.Background(), task(`{"model":"m","input":"hello","max_output_tokens":32}`)); err != nil {
		t.Fatalf("ProcessTask: %v", err)
	}
	if n := f.fakes[b].Stats().OK; n != 1 {
		t.Errorf("the other account served %d tasks, want 1", n)
	}
	ps, err := f.gate.ModelPauses(context.Background(), a)
	if err != nil || len(ps) != 1 || ps[0].Model != "m" {
		t.Errorf("model pauses of %s: %+v, %v; want m", a, ps, err)
	}
	if _, active, _ := f.gate.Check(context.Background(), a); active {
		t.Error("model_not_found paused the whole account")
	}
	// A model only the refusing account could serve fails as before.
	f.h.byName[b].models = map[string]bool{"other": true}
	err = f.h.ProcessTask(context.Background(), task(`{"model":"n","input":"hello","max_output_tokens":32}`))
	var be *backoff.Error
	if !errors.As(err, &be) || be.Code != backoff.CodeModelNotFound || !be.Permanent {
		t.Errorf("model no other account serves: %v; want the permanent model_not_found", err)
	}
}
