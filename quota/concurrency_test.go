package quota

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/promptq/promptq/internal/clock"
	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/internal/testutil"
	"github.com/redis/go-redis/v9"
)

// concEnv is one test's Concurrency, fake clock, Redis and account.
type concEnv struct {
	t    *testing.T
	ctx  context.Context
	c    *Concurrency
	clk  *clock.Fake
	rdb  *testutil.Redis
	acct string
}

func setupConcurrency(t *testing.T, cfg ConcurrencyConfig) *concEnv {
	t.Helper()
	rdb := testutil.NewRedis(t)
	clk := clock.NewFake(limStart)
	cfg.Clock = clk
	c, err := NewConcurrency(rdb.Client, cfg)
	if err != nil {
		t.Fatalf("NewConcurrency: %v", err)
	}
	return &concEnv{t: t, ctx: context.Background(), c: c, clk: clk, rdb: rdb, acct: testutil.Name(t)}
}

func (e *concEnv) acquire() (Permit, bool, time.Duration) {
	e.t.Helper()
	p, ok, retry, err := e.c.Acquire(e.ctx, e.acct)
	if err != nil {
		e.t.Fatalf("Acquire: %v", err)
	}
	return p, ok, retry
}

func (e *concEnv) mustAcquire() Permit {
	e.t.Helper()
	p, ok, _ := e.acquire()
	if !ok {
		e.t.Fatalf("Acquire refused, want a permit (limit/in flight %d/%d)", e.limit(), e.inFlight())
	}
	return p
}

// fill acquires permits until refused and returns them.
func (e *concEnv) fill() []Permit {
	e.t.Helper()
	var ps []Permit
	for {
		p, ok, _ := e.acquire()
		if !ok {
			return ps
		}
		ps = append(ps, p)
		if len(ps) > 10_000 {
			e.t.Fatal("fill: no limit")
		}
	}
}

func (e *concEnv) release(p Permit, o LoadSignal, lat time.Duration, ample bool) {
	e.t.Helper()
	if err := e.c.Release(e.ctx, p, o, lat, ample); err != nil {
		e.t.Fatalf("Release: %v", err)
	}
}

func (e *concEnv) state() (int, int) {
	e.t.Helper()
	l, n, err := e.c.Limit(e.ctx, e.acct)
	if err != nil {
		e.t.Fatalf("Limit: %v", err)
	}
	return l, n
}

func (e *concEnv) limit() int    { l, _ := e.state(); return l }
func (e *concEnv) inFlight() int { _, n := e.state(); return n }

func (e *concEnv) wantLimit(want int) {
	e.t.Helper()
	if got := e.limit(); got != want {
		e.t.Fatalf("limit = %d, want %d", got, want)
	}
}

func TestConcurrencyConfig(t *testing.T) {
	d := ConcurrencyConfig{}.WithDefaults()
	if d.Min != 1 || d.Max != 1000 || d.Initial != 4 || d.Lease != 2*time.Minute ||
		d.IncreaseEvery != 2*time.Second || d.DecreaseFactor != 0.7 ||
		d.DecreaseCooldown != 2*time.Second || d.LatencyRise != 2.0 {
		t.Fatalf("defaults = %+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	// Initial's default is clamped into [Min, Max].
	if c := (ConcurrencyConfig{Max: 2}).WithDefaults(); c.Initial != 2 || c.Validate() != nil {
		t.Fatalf("Max 2: Initial %d, err %v", c.Initial, c.Validate())
	}
	if c := (ConcurrencyConfig{Min: 10}).WithDefaults(); c.Initial != 10 || c.Validate() != nil {
		t.Fatalf("Min 10: Initial %d, err %v", c.Initial, c.Validate())
	}
	for _, tc := range []struct {
		name  string
		cfg   ConcurrencyConfig
		field string // "" = valid
	}{
		{"latency off", ConcurrencyConfig{LatencyRise: -1}, ""},
		{"min negative", ConcurrencyConfig{Min: -1}, "Min"},
		{"max below min", ConcurrencyConfig{Min: 5, Max: 3, Initial: 4}, "Max"},
		{"max too big", ConcurrencyConfig{Max: 200_000}, "Max"},
		{"initial above max", ConcurrencyConfig{Max: 10, Initial: 11}, "Initial"},
		{"lease short", ConcurrencyConfig{Lease: time.Millisecond}, "Lease"},
		{"increase fast", ConcurrencyConfig{IncreaseEvery: time.Millisecond}, "IncreaseEvery"},
		{"factor 1", ConcurrencyConfig{DecreaseFactor: 1}, "DecreaseFactor"},
		{"factor negative", ConcurrencyConfig{DecreaseFactor: -0.5}, "DecreaseFactor"},
		{"cooldown negative", ConcurrencyConfig{DecreaseCooldown: -time.Second}, "DecreaseCooldown"},
		{"rise 1", ConcurrencyConfig{LatencyRise: 1}, "LatencyRise"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.WithDefaults().Validate()
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("Validate = %v, want nil", err)
			case tc.field != "" && (err == nil || !strings.Contains(err.Error(), tc.field)):
				t.Fatalf("Validate = %v, want an error naming %s", err, tc.field)
			}
		})
	}
	if _, err := NewConcurrency(nil, ConcurrencyConfig{}); err == nil {
		t.Fatal("NewConcurrency(nil) succeeded")
	}
}

func TestConcurrencyAcquireRelease(t *testing.T) {
	t.Parallel()
	e := setupConcurrency(t, ConcurrencyConfig{Initial: 3})

	t.Run("up to the limit then refused", func(t *testing.T) {
		e.t = t
		ps := e.fill()
		if len(ps) != 3 {
			t.Fatalf("acquired %d, want 3", len(ps))
		}
		if l, n := e.state(); l != 3 || n != 3 {
			t.Fatalf("Limit = %d, %d, want 3, 3", l, n)
		}
		_, ok, retry := e.acquire()
		if ok || retry < 10*time.Millisecond {
			t.Fatalf("Acquire over the limit = ok %v, retry %v; want refused with a hint >= 10ms", ok, retry)
		}
		if ps[0].Account != e.acct || ps[0].ID == "" || ps[0].ID == ps[1].ID || !ps[0].Acquired.Equal(limStart) {
			t.Fatalf("permit = %+v", ps[0])
		}

		// Releasing frees exactly one slot, whatever the outcome says.
		e.release(ps[0], LoadNone, 0, false)
		if n := e.inFlight(); n != 2 {
			t.Fatalf("in flight after release = %d, want 2", n)
		}
		p := e.mustAcquire()
		if _, ok, _ := e.acquire(); ok {
			t.Fatal("second Acquire after one release succeeded")
		}
		// Releasing twice frees nothing more.
		e.release(ps[0], LoadNone, 0, false)
		if n := e.inFlight(); n != 3 {
			t.Fatalf("in flight after double release = %d, want 3", n)
		}
		for _, p := range append(ps[1:], p) {
			e.release(p, LoadNone, 0, false)
		}
		if n := e.inFlight(); n != 0 {
			t.Fatalf("in flight after releasing all = %d, want 0", n)
		}
	})

	t.Run("retry hint follows hold time", func(t *testing.T) {
		e.t = t
		// Hold permits for 3s each: the hint becomes about 3s/limit = 1s.
		for range 30 {
			p := e.mustAcquire()
			e.clk.Advance(3 * time.Second)
			e.release(p, LoadNone, 0, false)
		}
		ps := e.fill()
		_, ok, retry := e.acquire()
		if ok || retry < 900*time.Millisecond || retry > 1100*time.Millisecond {
			t.Fatalf("Acquire = ok %v, retry %v; want refused, about 1s", ok, retry)
		}
		for _, p := range ps {
			e.release(p, LoadNone, 0, false)
		}
	})

	t.Run("keys share the account hash tag", func(t *testing.T) {
		e.t = t
		e.release(e.mustAcquire(), LoadHealthy, 0, false)
		e.mustAcquire()
		for _, k := range []string{keys.Concurrency(e.acct), keys.Permits(e.acct)} {
			if !strings.HasPrefix(k, "promptq:{"+e.acct+"}:") {
				t.Fatalf("key %q lacks the account hash tag", k)
			}
			ttl, err := e.rdb.Client.PTTL(e.ctx, k).Result()
			if err != nil || ttl <= 0 {
				t.Fatalf("PTTL %s = %v, %v; want a TTL", k, ttl, err)
			}
		}
	})

	t.Run("bad input", func(t *testing.T) {
		e.t = t
		if _, _, _, err := e.c.Acquire(e.ctx, "a{b}"); err == nil {
			t.Fatal("Acquire with a brace in the account succeeded")
		}
		if err := e.c.Release(e.ctx, Permit{Account: e.acct}, LoadHealthy, 0, true); err == nil {
			t.Fatal("Release of an empty permit succeeded")
		}
		if err := e.c.Release(e.ctx, Permit{Account: e.acct, ID: "x"}, LoadSignal(7), 0, true); err == nil {
			t.Fatal("Release with an unknown outcome succeeded")
		}
	})
}

func TestConcurrencyLeaseExpires(t *testing.T) {
	t.Parallel()
	e := setupConcurrency(t, ConcurrencyConfig{Initial: 2, Lease: 30 * time.Second})
	dead := e.fill() // a worker takes both permits and dies
	if len(dead) != 2 {
		t.Fatalf("acquired %d, want 2", len(dead))
	}
	e.clk.Advance(10 * time.Second)
	_, ok, retry := e.acquire()
	if ok || retry > 20*time.Second {
		t.Fatalf("Acquire 10s in = ok %v, retry %v; want refused, hint <= 20s (oldest lease end)", ok, retry)
	}
	e.clk.Advance(20*time.Second - time.Millisecond)
	if _, ok, _ := e.acquire(); ok {
		t.Fatal("Acquire 1ms before the lease ends succeeded")
	}
	e.clk.Advance(time.Millisecond)
	if n := e.inFlight(); n != 0 {
		t.Fatalf("in flight at lease end = %d, want 0", n)
	}
	e.fill()
	if n := e.inFlight(); n != 2 {
		t.Fatalf("in flight after refill = %d, want 2", n)
	}
	// The dead worker's late release frees nothing of the new holders'.
	e.release(dead[0], LoadNone, 0, false)
	if n := e.inFlight(); n != 2 {
		t.Fatalf("in flight after a stale release = %d, want 2", n)
	}
}

func TestConcurrencyIncrease(t *testing.T) {
	t.Parallel()
	cfg := ConcurrencyConfig{Initial: 2, Max: 5, IncreaseEvery: 2 * time.Second, LatencyRise: 2}

	// round fills the limit, waits d, and releases every permit with o.
	round := func(e *concEnv, d time.Duration, o LoadSignal, lat time.Duration, ample bool) {
		e.t.Helper()
		ps := e.fill()
		e.clk.Advance(d)
		for _, p := range ps {
			e.release(p, o, lat, ample)
		}
	}

	t.Run("one step per interval, never above Max", func(t *testing.T) {
		t.Parallel()
		e := setupConcurrency(t, cfg)
		round(e, 2*time.Second, LoadHealthy, 100*time.Millisecond, true)
		e.wantLimit(2) // the first release starts the interval
		var got []int
		for range 6 {
			round(e, 2*time.Second, LoadHealthy, 100*time.Millisecond, true)
			got = append(got, e.limit())
		}
		if fmt.Sprint(got) != "[3 4 5 5 5 5]" {
			t.Fatalf("limits = %v, want [3 4 5 5 5 5]", got)
		}
	})

	t.Run("not before the interval", func(t *testing.T) {
		t.Parallel()
		e := setupConcurrency(t, cfg)
		round(e, 0, LoadHealthy, 0, true) // starts the interval
		round(e, 2*time.Second-time.Millisecond, LoadHealthy, 0, true)
		e.wantLimit(2)
		round(e, time.Millisecond, LoadHealthy, 0, true)
		e.wantLimit(3)
	})

	for _, tc := range []struct {
		name   string
		o      LoadSignal
		lat    time.Duration
		ample  bool
		rounds int
	}{
		{"not ample", LoadHealthy, 100 * time.Millisecond, false, 5},
		{"other outcome", LoadNone, 100 * time.Millisecond, true, 5},
		// 1.8x: neither flat nor a rise. Only one round: a lasting shift
		// becomes the new baseline within a few dozen calls (by design).
		{"latency above flat", LoadHealthy, 180 * time.Millisecond, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setupConcurrency(t, cfg)
			for range 5 { // a baseline of 100ms
				round(e, 0, LoadHealthy, 100*time.Millisecond, false)
			}
			for range tc.rounds {
				round(e, 2*time.Second, tc.o, tc.lat, tc.ample)
			}
			e.wantLimit(2)
		})
	}

	t.Run("not while the limit is mostly unused", func(t *testing.T) {
		t.Parallel()
		e := setupConcurrency(t, ConcurrencyConfig{Initial: 10, IncreaseEvery: 2 * time.Second})
		for range 10 { // one call at a time out of 10
			p := e.mustAcquire()
			e.clk.Advance(2 * time.Second)
			e.release(p, LoadHealthy, 0, true)
		}
		e.wantLimit(10)
		round(e, 2*time.Second, LoadHealthy, 0, true) // all 10 in use
		e.wantLimit(11)
	})
}

func TestConcurrencyDecrease(t *testing.T) {
	t.Parallel()
	e := setupConcurrency(t, ConcurrencyConfig{Initial: 10, Min: 2, DecreaseFactor: 0.7, DecreaseCooldown: 2 * time.Second})
	old := e.fill()

	e.release(old[0], LoadOverload, 0, true)
	e.wantLimit(7)
	// The rest of the burst, from permits taken before the cut: no further cut.
	e.clk.Advance(time.Second)
	e.release(old[1], LoadOverload, 0, true)
	e.wantLimit(7)
	// After the cooldown, a permit taken before the cut still reports on the old limit.
	e.clk.Advance(5 * time.Second)
	e.release(old[2], LoadOverload, 0, true)
	e.wantLimit(7)
	for _, p := range old[3:] {
		e.release(p, LoadNone, 0, true)
	}

	// New overloads cut once per cooldown: 7 -> 4 -> 2, never below Min.
	var got []int
	for range 4 {
		e.release(e.mustAcquire(), LoadOverload, 0, true)
		got = append(got, e.limit())
		// A permit taken after the cut, failing within the cooldown: no cut.
		e.clk.Advance(time.Millisecond)
		p := e.mustAcquire()
		e.clk.Advance(time.Second)
		e.release(p, LoadOverload, 0, true)
		e.wantLimit(got[len(got)-1])
		e.clk.Advance(time.Second)
	}
	if fmt.Sprint(got) != "[4 2 2 2]" {
		t.Fatalf("limits = %v, want [4 2 2 2]", got)
	}
	if ps := e.fill(); len(ps) != 2 {
		t.Fatalf("acquired %d at the floor, want 2", len(ps))
	}
}

func TestConcurrencyDecreaseDelaysIncrease(t *testing.T) {
	t.Parallel()
	e := setupConcurrency(t, ConcurrencyConfig{Initial: 4, IncreaseEvery: 2 * time.Second})
	ps := e.fill()
	e.clk.Advance(10 * time.Second)
	e.release(ps[0], LoadHealthy, 0, true) // starts the interval
	e.clk.Advance(10 * time.Second)
	e.release(ps[1], LoadOverload, 0, true) // 4 -> 2
	e.wantLimit(2)
	e.release(ps[2], LoadHealthy, 0, true)
	e.wantLimit(2) // the increase interval restarted at the cut
}

func TestConcurrencyLatencyRise(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		rise float64
		lat  time.Duration
		want int
	}{
		{"rise shrinks", 2, 250 * time.Millisecond, 7},
		{"just under the rise holds", 2, 199 * time.Millisecond, 10},
		{"signal off", -1, 500 * time.Millisecond, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setupConcurrency(t, ConcurrencyConfig{Initial: 10, LatencyRise: tc.rise})
			for range 20 { // baseline 100ms; not ample, so no increase
				e.release(e.mustAcquire(), LoadHealthy, 100*time.Millisecond, false)
			}
			e.wantLimit(10)
			e.release(e.mustAcquire(), LoadHealthy, tc.lat, false)
			e.wantLimit(tc.want)
		})
	}

	t.Run("an outlier barely moves the baseline", func(t *testing.T) {
		t.Parallel()
		e := setupConcurrency(t, ConcurrencyConfig{Initial: 10, DecreaseCooldown: time.Millisecond})
		for range 20 {
			e.release(e.mustAcquire(), LoadHealthy, 100*time.Millisecond, false)
		}
		e.release(e.mustAcquire(), LoadHealthy, 10*time.Second, false) // cut: 10 -> 7
		e.clk.Advance(time.Second)
		// The baseline is now at most 110ms (sample clamped to 200ms), so
		// 230ms is still a rise.
		e.release(e.mustAcquire(), LoadHealthy, 230*time.Millisecond, false)
		e.wantLimit(4)
	})
}

func TestConcurrencyParallelAcquire(t *testing.T) {
	t.Parallel()

	t.Run("one shot", func(t *testing.T) {
		t.Parallel()
		e := setupConcurrency(t, ConcurrencyConfig{Initial: 7})
		var wg sync.WaitGroup
		var got atomic.Int64
		for range 50 {
			wg.Go(func() {
				_, ok, _, err := e.c.Acquire(e.ctx, e.acct)
				if err != nil {
					t.Error(err)
				}
				if ok {
					got.Add(1)
				}
			})
		}
		wg.Wait()
		if got.Load() != 7 {
			t.Fatalf("%d acquired by 50 goroutines, want 7", got.Load())
		}
	})

	t.Run("churn", func(t *testing.T) {
		t.Parallel()
		e := setupConcurrency(t, ConcurrencyConfig{Initial: 5})
		var wg sync.WaitGroup
		var held, peak, acquired atomic.Int64
		for range 50 {
			wg.Go(func() {
				for range 20 {
					p, ok, _, err := e.c.Acquire(e.ctx, e.acct)
					if err != nil {
						t.Error(err)
						return
					}
					if !ok {
						continue
					}
					acquired.Add(1)
					n := held.Add(1)
					for {
						m := peak.Load()
						if n <= m || peak.CompareAndSwap(m, n) {
							break
						}
					}
					// Hold it for a round trip, checking Redis's own count meanwhile.
					if _, n, err := e.c.Limit(e.ctx, e.acct); err != nil || n > 5 {
						t.Errorf("Limit while holding = %d in flight, %v; want <= 5", n, err)
					}
					held.Add(-1)
					if err := e.c.Release(e.ctx, p, LoadNone, 0, true); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if acquired.Load() == 0 || peak.Load() > 5 {
			t.Fatalf("acquired %d, peak held %d; want > 0 and <= 5", acquired.Load(), peak.Load())
		}
		if n := e.inFlight(); n != 0 {
			t.Fatalf("in flight after churn = %d, want 0", n)
		}
		t.Logf("acquired %d of 1000 tries, peak %d", acquired.Load(), peak.Load())
	})
}

func ExampleConcurrency() {
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	ctx := context.Background()

	clk := clock.NewFake(time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC))
	c, err := NewConcurrency(rdb, ConcurrencyConfig{Clock: clk, Initial: 2})
	if err != nil {
		panic(err)
	}
	p1, ok1, _, _ := c.Acquire(ctx, "acme")
	p2, ok2, _, _ := c.Acquire(ctx, "acme")
	_, ok3, retry, _ := c.Acquire(ctx, "acme") // hint: no hold time known yet, 100ms / limit 2
	fmt.Println("acquired:", ok1, ok2, ok3, "retry after", retry)

	// The provider answered 429 to one call: the limit shrinks.
	_ = c.Release(ctx, p1, LoadOverload, 0, false)
	_ = c.Release(ctx, p2, LoadHealthy, 800*time.Millisecond, true)
	limit, inFlight, _ := c.Limit(ctx, "acme")
	fmt.Println("limit:", limit, "in flight:", inFlight)
	// Output:
	// acquired: true true false retry after 50ms
	// limit: 1 in flight: 0
}

// benchConcurrency is a Concurrency on real Redis with room for every
// benchmark goroutine, and a fresh account.
func benchConcurrency(b *testing.B) (*Concurrency, string) {
	b.Helper()
	rdb := testutil.RequireReal(b)
	c, err := NewConcurrency(rdb.Client, ConcurrencyConfig{Initial: 1000, Max: 1000})
	if err != nil {
		b.Fatal(err)
	}
	return c, testutil.Name(b)
}

// BenchmarkConcurrencyAcquireRelease measures one Acquire + Release pair
// (two EVALSHAs) per op.
func BenchmarkConcurrencyAcquireRelease(b *testing.B) {
	c, acct := benchConcurrency(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p, ok, _, err := c.Acquire(ctx, acct)
		if err != nil || !ok {
			b.Fatalf("Acquire = %v, %v", ok, err)
		}
		if err := c.Release(ctx, p, LoadHealthy, 100*time.Millisecond, true); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConcurrencyAcquireReleaseParallel is the same pair from
// GOMAXPROCS goroutines on one account: the contended case of many workers.
func BenchmarkConcurrencyAcquireReleaseParallel(b *testing.B) {
	c, acct := benchConcurrency(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p, ok, _, err := c.Acquire(ctx, acct)
			if err != nil || !ok {
				b.Errorf("Acquire = %v, %v", ok, err)
				return
			}
			if err := c.Release(ctx, p, LoadHealthy, 100*time.Millisecond, true); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
