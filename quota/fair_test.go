package quota

import (
	"errors"
	"testing"
	"time"

	"github.com/promptq/promptq/internal/keys"
)

// simWorker is one worker slot in the fair-sharing simulation: it asks for
// headroom, sends when its turn comes, holds the slot for latency, and asks
// again; a refused worker asks again after the wait Reserve returned.
type simWorker struct {
	tenant  string
	cost    Cost
	latency time.Duration
	next    time.Time // when it asks next
	joins   time.Time // when it starts asking (zero = at once)
}

// simTally is what one tenant got in a window of the simulation.
type simTally struct {
	requests, tokens int64
	fairRefusals     int
	calls            int // Reserve calls in the window
}

// simulate runs workers against e's limiter on the fake clock until end and
// tallies, per tenant, the requests sent in [from, end).
func (e *limEnv) simulate(workers []*simWorker, from, end time.Duration) map[string]*simTally {
	e.t.Helper()
	start := e.clk.Now()
	out := map[string]*simTally{}
	for _, w := range workers {
		w.next = start
		if !w.joins.IsZero() {
			w.next = w.joins
		}
		if out[w.tenant] == nil {
			out[w.tenant] = &simTally{}
		}
	}
	for {
		w := workers[0]
		for _, x := range workers[1:] {
			if x.next.Before(w.next) {
				w = x
			}
		}
		if !w.next.Before(start.Add(end)) {
			return out
		}
		e.clk.Set(w.next)
		d, err := e.l.Reserve(e.ctx, e.acct, w.cost, 0, WithTenant(w.tenant))
		if err != nil {
			e.t.Fatalf("Reserve for %s: %v", w.tenant, err)
		}
		now := e.clk.Now()
		if !now.Before(start.Add(from)) {
			out[w.tenant].calls++
		}
		switch {
		case d.OK:
			sent := now.Add(d.Wait)
			if !sent.Before(start.Add(from)) && sent.Before(start.Add(end)) {
				out[w.tenant].requests += w.cost.Requests
				out[w.tenant].tokens += w.cost.Tokens
			}
			w.next = sent.Add(w.latency)
		case d.Paused || d.DailyExhausted:
			e.t.Fatalf("unexpected decision %+v", d)
		default:
			if d.FairShare && !now.Before(start.Add(from)) {
				out[w.tenant].fairRefusals++
			}
			w.next = now.Add(max(d.Wait, time.Millisecond))
		}
	}
}

// pool returns n workers of tenant.
func pool(n int, tenant string, cost Cost, latency time.Duration) []*simWorker {
	ws := make([]*simWorker, n)
	for i := range ws {
		ws[i] = &simWorker{tenant: tenant, cost: cost, latency: latency}
	}
	return ws
}

func share(a, b int64) float64 { return float64(a) / float64(a+b) }

// TestFairSharing drives the tenant scheduler in lua/reserve.lua with a fake
// clock: hungry workers of several tenants asking for one account's
// headroom, the way Handler.admit does (wait out a scheduled turn, ask again
// after a refusal's wait).
func TestFairSharing(t *testing.T) {
	one := Cost{Requests: 1, Tokens: 10}
	// 600 RPM = 10 requests/s, 1 s of burst, turns booked up to 2 s ahead
	// (the worker's default scheduling).
	account := Config{RPM: 600, Burst: time.Second, Schedule: 2 * time.Second}

	t.Run("equal weights split short headroom evenly, whatever the worker counts", func(t *testing.T) {
		// A has three times B's workers: without fair sharing each worker
		// books turns as often as any other and A gets 3/4.
		e := setupLimiter(t, account)
		got := e.simulate(append(pool(18, "A", one, 50*time.Millisecond), pool(6, "B", one, 50*time.Millisecond)...), 10*time.Second, 70*time.Second)
		a, b := got["A"], got["B"]
		total := a.requests + b.requests
		if s := share(b.requests, a.requests); s < 0.45 || s > 0.55 {
			t.Errorf("B's share = %.3f (A %d, B %d), want 0.5 ± 0.05", s, a.requests, b.requests)
		}
		if total < 570 || total > 610 { // 60 s at 10/s
			t.Errorf("admitted %d in 60 s, want the account's 600 (± 5%%)", total)
		}
		if a.fairRefusals == 0 {
			t.Errorf("A was never refused for fair share")
		}
		t.Logf("A %d, B %d requests in 60 s; A refused %d times, B %d; %d Reserve calls", a.requests, b.requests, a.fairRefusals, b.fairRefusals, a.calls+b.calls)
	})

	t.Run("weights 1:3", func(t *testing.T) {
		e := setupLimiter(t, account)
		e.setTenant("B", TenantBudget{Weight: 3})
		got := e.simulate(append(pool(18, "A", one, 50*time.Millisecond), pool(6, "B", one, 50*time.Millisecond)...), 10*time.Second, 70*time.Second)
		if s := share(got["B"].requests, got["A"].requests); s < 0.70 || s > 0.80 {
			t.Errorf("B's share = %.3f (A %d, B %d), want 0.75 ± 0.05", s, got["A"].requests, got["B"].requests)
		}
	})

	t.Run("the scarce resource is what is shared: tokens", func(t *testing.T) {
		// 60000 TPM = 1000 tokens/s and plenty of requests. A's requests are
		// ten times B's; with equal workers A would take 10/11 of the tokens.
		e := setupLimiter(t, Config{RPM: 100000, TPM: 60000, Burst: time.Second, Schedule: 2 * time.Second})
		got := e.simulate(append(pool(8, "A", Cost{Requests: 1, Tokens: 200}, 50*time.Millisecond),
			pool(8, "B", Cost{Requests: 1, Tokens: 20}, 50*time.Millisecond)...), 10*time.Second, 70*time.Second)
		a, b := got["A"], got["B"]
		if s := share(b.tokens, a.tokens); s < 0.45 || s > 0.55 {
			t.Errorf("B's token share = %.3f (A %d, B %d tokens), want 0.5 ± 0.05", s, a.tokens, b.tokens)
		}
		if b.requests < 8*a.requests {
			t.Errorf("B sent %d requests, A %d: want about 10 times as many (same tokens, requests a tenth the size)", b.requests, a.requests)
		}
	})

	t.Run("no capacity idles for a tenant that cannot use its share", func(t *testing.T) {
		// B has one worker whose calls take 2 s: it can use 0.5 requests/s
		// of its 5. A must get the rest.
		e := setupLimiter(t, account)
		got := e.simulate(append(pool(18, "A", one, 50*time.Millisecond), pool(1, "B", one, 2*time.Second)...), 10*time.Second, 70*time.Second)
		a, b := got["A"], got["B"]
		if total := a.requests + b.requests; total < 570 {
			t.Errorf("admitted %d in 60 s (A %d, B %d), want the account's 600 (-5%%)", total, a.requests, b.requests)
		}
		if b.requests < 27 { // 60 s / (2 s + a short wait)
			t.Errorf("B admitted %d, want about one per 2 s (>= 27)", b.requests)
		}
		t.Logf("A %d, B %d requests in 60 s; A refused %d times; %d Reserve calls", a.requests, b.requests, a.fairRefusals, a.calls+b.calls)
	})

	t.Run("a tenant that joins late banks no credit", func(t *testing.T) {
		// A runs alone for 30 s; then B joins with as many workers. B's share
		// of the next 30 s is half, not all of it until it has caught up.
		e := setupLimiter(t, account)
		late := pool(12, "B", one, 50*time.Millisecond)
		for _, w := range late {
			w.joins = e.clk.Now().Add(30 * time.Second)
		}
		got := e.simulate(append(pool(12, "A", one, 50*time.Millisecond), late...), 35*time.Second, 65*time.Second)
		if s := share(got["B"].requests, got["A"].requests); s < 0.42 || s > 0.58 {
			t.Errorf("B's share after joining = %.3f (A %d, B %d), want 0.5 ± 0.08", s, got["A"].requests, got["B"].requests)
		}
	})

	t.Run("requests without a tenant are one tenant", func(t *testing.T) {
		e := setupLimiter(t, account)
		got := e.simulate(append(pool(18, "", one, 50*time.Millisecond), pool(6, "B", one, 50*time.Millisecond)...), 10*time.Second, 70*time.Second)
		if s := share(got["B"].requests, got[""].requests); s < 0.45 || s > 0.55 {
			t.Errorf("B's share next to untenanted requests = %.3f, want 0.5 ± 0.05", s)
		}
	})
}

// TestFairSharingKeepsBudgets checks that a capped tenant's own budget, not
// fair sharing, holds it back, and that it does not hold the others back
// while it waits for its budget.
func TestFairSharingKeepsBudgets(t *testing.T) {
	e := setupLimiter(t, Config{RPM: 600, Burst: time.Second, Schedule: 2 * time.Second})
	e.setTenant("capped", TenantBudget{RPM: 60}) // 1/s of the account's 10/s
	one := Cost{Requests: 1, Tokens: 10}
	got := e.simulate(append(pool(12, "capped", one, 50*time.Millisecond), pool(12, "free", one, 50*time.Millisecond)...), 10*time.Second, 70*time.Second)
	c, f := got["capped"], got["free"]
	if c.requests < 55 || c.requests > 65 {
		t.Errorf("capped tenant sent %d in 60 s, want its 60 RPM", c.requests)
	}
	if total := c.requests + f.requests; total < 570 {
		t.Errorf("admitted %d in 60 s (capped %d, free %d), want the account's 600 (-5%%)", total, c.requests, f.requests)
	}
	// The capped tenant waits for its own budget: it has no claim on the
	// account's headroom, so the free tenant never yields to it.
	if f.fairRefusals > 0 {
		t.Errorf("free tenant refused %d times for fair share next to a tenant held back by its budget", f.fairRefusals)
	}
}

func TestTenantWeightValidation(t *testing.T) {
	e := setupLimiter(t, Config{RPM: 60})
	for _, w := range []int64{-1, MaxTenantWeight + 1} {
		if err := e.l.SetTenantBudget(e.ctx, e.acct, "t", TenantBudget{Weight: w}); err == nil {
			t.Errorf("weight %d accepted", w)
		}
	}
	e.setTenant("t", TenantBudget{Weight: 7})
	if s := e.tenant("t"); s.Budget.Weight != 7 {
		t.Fatalf("tenant state = %+v, want weight 7", s)
	}
	// A weight alone caps nothing.
	for i := 0; i < 60; i++ {
		if d := e.reserveFor("t"); !d.OK {
			t.Fatalf("reservation %d of a weight-only tenant: %+v", i, d)
		}
	}
}

func TestFairSnapshot(t *testing.T) {
	e := setupLimiter(t, Config{RPM: 600, Burst: time.Second, Schedule: 2 * time.Second})
	e.setTenant("B", TenantBudget{Weight: 2})
	if d := e.reserveFor("B"); !d.OK {
		t.Fatalf("B's first request: %+v", d)
	}
	// A takes the burst (10 requests of 100 ms of capacity each) and
	// scheduled turns until it is FairSlack ahead of B, which asked.
	var last Decision
	for i := 0; i < 30; i++ {
		if last = e.reserveFor("A"); !last.OK {
			break
		}
	}
	if last.OK || !last.FairShare || last.Wait < FairRetry {
		t.Fatalf("A's request while ahead of B = %+v, want a fair-share refusal of at least %v", last, FairRetry)
	}
	s, err := e.l.Snapshot(e.ctx, e.acct)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Fair) != 2 || s.Fair[0].Tenant != "A" || s.Fair[1].Tenant != "B" {
		t.Fatalf("Snapshot.Fair = %+v, want A and B", s.Fair)
	}
	a, b := s.Fair[0], s.Fair[1]
	if !a.Yielding() || a.Weight != 1 || b.Yielding() || b.Lead != 0 || b.Weight != 2 {
		t.Fatalf("Snapshot.Fair = %+v, want A (weight 1) yielding ahead of B (weight 2, lead 0)", s.Fair)
	}
	// B's pending work ends FairGrace after its request was sent (B's
	// wait was 0): after that, A alone books scheduled turns again.
	e.clk.Advance(FairGrace + time.Millisecond)
	if s, err = e.l.Snapshot(e.ctx, e.acct); err != nil || len(s.Fair) != 1 || s.Fair[0].Tenant != "A" {
		t.Fatalf("Snapshot.Fair after B's grace = %+v (%v), want A only", s.Fair, err)
	}
	scheduled := 0
	for i := 0; i < 15; i++ { // the refilled bucket (10), then scheduled turns
		d := e.reserveFor("A")
		if !d.OK {
			t.Fatalf("A alone after B's pending work ended: %+v", d)
		}
		if d.Wait > 0 {
			scheduled++
		}
	}
	if scheduled == 0 {
		t.Fatal("A was never given a scheduled turn: the test did not reach the fair-share check")
	}
}

// TestFairPending: what counts as pending work.
func TestFairPending(t *testing.T) {
	t.Run("a request refused for a long wait is pending", func(t *testing.T) {
		// 60 RPM, 1 request of burst, turns booked up to 2 s ahead.
		e := setupLimiter(t, Config{RPM: 60, Burst: time.Second, Schedule: 2 * time.Second})
		for e.reserveFor("A").OK { // A books the bucket and 2 s of turns
		}
		d := e.reserveFor("B") // 3 s away: refused, but B waits for headroom
		if d.OK || d.FairShare || d.Wait <= 2*time.Second {
			t.Fatalf("B's request = %+v, want a plain refusal over the schedule", d)
		}
		s, err := e.l.Snapshot(e.ctx, e.acct)
		if err != nil || len(s.Fair) != 2 || s.Fair[1].Tenant != "B" ||
			s.Fair[1].PendingUntil.Before(e.clk.Now().Add(d.Wait)) {
			t.Fatalf("Snapshot.Fair = %+v (%v), want B pending until at least its retry in %v", s.Fair, err, d.Wait)
		}
	})
	t.Run("without scheduling there is no fair sharing", func(t *testing.T) {
		e := setupLimiter(t, Config{RPM: 60, Burst: time.Second})
		e.reserveFor("A")
		e.reserveFor("B")
		if n, err := e.rdb.Client.Exists(e.ctx, keys.FairSeen(e.acct), keys.FairVT(e.acct)).Result(); err != nil || n != 0 {
			t.Errorf("fair-share keys written without Config.Schedule: %d (%v)", n, err)
		}
	})
}

func TestNoFairShare(t *testing.T) {
	// The same load as "equal weights split short headroom evenly", with
	// fair sharing off: each worker books turns as often as any other.
	e := setupLimiter(t, Config{RPM: 600, Burst: time.Second, Schedule: 2 * time.Second, NoFairShare: true})
	one := Cost{Requests: 1, Tokens: 10}
	got := e.simulate(append(pool(18, "A", one, 50*time.Millisecond), pool(6, "B", one, 50*time.Millisecond)...), 10*time.Second, 70*time.Second)
	if s := share(got["B"].requests, got["A"].requests); s > 0.3 || got["A"].fairRefusals > 0 {
		t.Errorf("B's share with NoFairShare = %.3f, A refused %d times for fair share; want B at most its share of workers (0.25), no refusals", s, got["A"].fairRefusals)
	}
	if n, err := e.rdb.Client.Exists(e.ctx, keys.FairSeen(e.acct), keys.FairVT(e.acct)).Result(); err != nil || n != 0 {
		t.Errorf("fair-share keys written with NoFairShare: %d (%v)", n, err)
	}
}

func TestTenantBudgetValidate(t *testing.T) {
	for _, tt := range []struct {
		b     TenantBudget
		field string // "" = valid, "-" = the empty budget
	}{
		{TenantBudget{RPM: 60}, ""},
		{TenantBudget{Weight: MaxTenantWeight}, ""},
		{TenantBudget{}, "-"},
		{TenantBudget{RPM: -1}, "rpm"},
		{TenantBudget{TPM: -1, Weight: 2}, "tpm"},
		{TenantBudget{DailyRequests: -5}, "daily_requests"},
		{TenantBudget{RPM: 60, Weight: -1}, "weight"},
		{TenantBudget{Weight: MaxTenantWeight + 1}, "weight"},
	} {
		err := tt.b.Validate()
		var be *BudgetError
		switch {
		case tt.field == "" && err != nil:
			t.Errorf("%+v: %v, want valid", tt.b, err)
		case tt.field == "":
		case !errors.As(err, &be):
			t.Errorf("%+v: %v, want a *BudgetError", tt.b, err)
		case tt.field == "-" && be.Field != "", tt.field != "-" && be.Field != tt.field:
			t.Errorf("%+v: field %q, want %q", tt.b, be.Field, tt.field)
		}
	}
}
