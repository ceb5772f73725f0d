package quota

import (
	"testing"
	"time"
)

func (e *limEnv) setTenant(tenant string, b TenantBudget) {
	e.t.Helper()
	if err := e.l.SetTenantBudget(e.ctx, e.acct, tenant, b); err != nil {
		e.t.Fatalf("SetTenantBudget(%s, %+v): %v", tenant, b, err)
	}
}

func (e *limEnv) reserveFor(tenant string) Decision {
	e.t.Helper()
	d, err := e.l.Reserve(e.ctx, e.acct, Cost{Requests: 1, Tokens: 10}, 0, WithTenant(tenant))
	if err != nil {
		e.t.Fatalf("Reserve for %s: %v", tenant, err)
	}
	return d
}

func (e *limEnv) tenant(name string) TenantState {
	e.t.Helper()
	ts, err := e.l.Tenants(e.ctx, e.acct)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, s := range ts {
		if s.Tenant == name {
			return s
		}
	}
	e.t.Fatalf("tenant %s not listed in %+v", name, ts)
	return TenantState{}
}

func TestTenantBudget(t *testing.T) {
	t.Run("a capped tenant gets its share, the other is not slowed", func(t *testing.T) {
		// Account 1200 RPM with Burst 1s (20 requests); tenant "noisy" 60 RPM
		// (TenantBurst = 5s: 5 requests of burst), tenant "quiet" without a budget.
		e := setupLimiter(t, Config{RPM: 1200, Burst: time.Second})
		e.setTenant("noisy", TenantBudget{RPM: 60})
		noisy, quiet := 0, 0
		for step := 0; step < 600; step++ { // one minute in 100ms steps
			for e.reserveFor("noisy").OK {
				noisy++
			}
			if d := e.reserveFor("quiet"); d.OK {
				quiet++
			} else {
				t.Fatalf("step %d: quiet tenant held back: %+v", step, d)
			}
			e.clk.Advance(100 * time.Millisecond)
		}
		if noisy != 64 { // 5 of burst + 59 refilled over 59.9 s
			t.Fatalf("noisy tenant admitted %d in a minute, want its 60 RPM (64 with the 5 s burst)", noisy)
		}
		if quiet != 600 {
			t.Fatalf("quiet tenant admitted %d, want one every 100ms (600)", quiet)
		}
		for e.reserveFor("noisy").OK { // the refill of the last step
			noisy++
		}
		d := e.reserveFor("noisy")
		if d.OK || !d.TenantLimited || d.Wait <= 0 || d.Wait > time.Second {
			t.Fatalf("noisy over budget = %+v, want a tenant-limited wait of at most 1s", d)
		}
		if s := e.tenant("noisy"); s.Budget.RPM != 60 || s.DailyRequests != int64(noisy) {
			t.Fatalf("tenant state = %+v, want budget 60 RPM and %d requests today", s, noisy)
		}
	})

	t.Run("no tenant and unbudgeted tenants are unchanged", func(t *testing.T) {
		e := setupLimiter(t, Config{RPM: 60})
		e.setTenant("other", TenantBudget{RPM: 1})
		for i := 0; i < 60; i++ {
			if !e.reserveFor("free").OK {
				t.Fatalf("reservation %d of a tenant without budget held back", i)
			}
		}
		if d := e.reserveFor("free"); d.OK || d.TenantLimited {
			t.Fatalf("61st = %+v, want an account (not tenant) wait", d)
		}
	})

	t.Run("budget changes take effect at once", func(t *testing.T) {
		e := setupLimiter(t, Config{RPM: 6000})
		e.setTenant("t", TenantBudget{RPM: 60})
		n := 0
		for e.reserveFor("t").OK {
			n++
		}
		if n != 5 {
			t.Fatalf("admitted %d from a full 60 RPM bucket, want its 5 s of burst (5)", n)
		}
		e.setTenant("t", TenantBudget{RPM: 6000}) // 100 a second from now on
		e.clk.Advance(100 * time.Millisecond)
		n = 0
		for e.reserveFor("t").OK {
			n++
		}
		if n != 10 {
			t.Fatalf("admitted %d in 100ms after raising to 6000 RPM, want 10", n)
		}
		e.setTenant("t", TenantBudget{RPM: 6000, DailyRequests: 75})
		e.clk.Advance(time.Second)
		n = 0
		for e.reserveFor("t").OK {
			n++
		}
		if n != 60 {
			t.Fatalf("admitted %d under a 75-a-day budget after 15, want 60", n)
		}
		d := e.reserveFor("t")
		if d.OK || !d.TenantLimited || d.Wait != 12*time.Hour-1100*time.Millisecond {
			t.Fatalf("over the daily budget = %+v, want a tenant wait until midnight", d)
		}
		if ok, err := e.l.DeleteTenant(e.ctx, e.acct, "t"); err != nil || !ok {
			t.Fatalf("DeleteTenant = %v, %v", ok, err)
		}
		if !e.reserveFor("t").OK {
			t.Fatal("a deleted tenant is still held back")
		}
		if ts, _ := e.l.Tenants(e.ctx, e.acct); len(ts) != 0 {
			t.Fatalf("tenants after delete = %+v", ts)
		}
	})

	t.Run("refund returns the tenant's debit", func(t *testing.T) {
		e := setupLimiter(t, Config{})
		e.setTenant("t", TenantBudget{RPM: 60, TPM: 1000, DailyRequests: 100})
		d, err := e.l.Reserve(e.ctx, e.acct, Cost{Requests: 1, Tokens: 400}, 0, WithTenant("t"))
		if err != nil || !d.OK || d.Reservation.Tenant != "t" {
			t.Fatalf("Reserve = %+v, %v", d, err)
		}
		s := e.tenant("t")
		// Buckets hold TenantBurst (5 s) of the budget: 5 requests, 83.3 tokens;
		// a cost above capacity is admitted from a full bucket into debt.
		approx(t, "requests after reserve", s.Requests, 4)
		approx(t, "tokens after reserve", s.Tokens, 1000.0/12-400)
		if s.DailyRequests != 1 {
			t.Fatalf("daily requests = %d, want 1", s.DailyRequests)
		}
		if err := e.l.Refund(e.ctx, d.Reservation, Unknown); err != nil {
			t.Fatal(err)
		}
		s = e.tenant("t")
		approx(t, "requests after refund", s.Requests, 5)
		approx(t, "tokens after refund", s.Tokens, 1000.0/12)
		if s.DailyRequests != 0 {
			t.Fatalf("daily requests after refund = %d, want 0", s.DailyRequests)
		}
		// Settle with usage corrects the estimate's error like the account's.
		d, _ = e.l.Reserve(e.ctx, e.acct, Cost{Requests: 1, Tokens: 400}, 300, WithTenant("t"))
		if !d.OK {
			t.Fatalf("second reserve = %+v", d)
		}
		if err := e.l.Settle(e.ctx, d.Reservation, Unknown, &Usage{InputTokens: 200, OutputTokens: 10}); err != nil {
			t.Fatal(err)
		}
		approx(t, "tokens after settle", e.tenant("t").Tokens, 1000.0/12-300) // charged 200 input + 100 reserved output
	})

	t.Run("validation", func(t *testing.T) {
		e := setupLimiter(t, Config{})
		if err := e.l.SetTenantBudget(e.ctx, e.acct, "bad{name}", TenantBudget{RPM: 1}); err == nil {
			t.Fatal("a tenant name with braces was accepted")
		}
		if err := e.l.SetTenantBudget(e.ctx, e.acct, "t", TenantBudget{RPM: -1}); err == nil {
			t.Fatal("a negative budget was accepted")
		}
		if _, err := e.l.Reserve(e.ctx, e.acct, Cost{Requests: 1}, 0, WithTenant("a b")); err == nil {
			t.Fatal("Reserve accepted a bad tenant name")
		}
	})
}
