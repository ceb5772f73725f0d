package quota

import (
	"cmp"
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	_ "time/tzdata" // America/New_York on machines without zoneinfo

	"github.com/promptq/promptq/internal/clock"
	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/internal/testutil"
)

var limStart = time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)

// limEnv is one test's limiter, fake clock, Redis and account.
type limEnv struct {
	t    *testing.T
	ctx  context.Context
	l    *Limiter
	clk  *clock.Fake
	rdb  *testutil.Redis
	acct string
	cfg  Config
}

func setupLimiter(t *testing.T, cfg Config) *limEnv {
	t.Helper()
	rdb := testutil.NewRedis(t)
	clk := clock.NewFake(limStart)
	cfg.Clock = clk
	l, err := New(rdb.Client, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	acct := testutil.Name(t)
	testutil.CleanupAccount(t, rdb.Client, acct)
	return &limEnv{t: t, ctx: context.Background(), l: l, clk: clk, rdb: rdb, acct: acct, cfg: cfg}
}

// with returns another limiter (another "worker") on the same Redis, clock and account.
func (e *limEnv) with(cfg Config) *Limiter {
	e.t.Helper()
	cfg.Clock = e.clk
	l, err := New(e.rdb.Client, cfg)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	return l
}

func (e *limEnv) reserve(c Cost, est int64) Decision {
	e.t.Helper()
	d, err := e.l.Reserve(e.ctx, e.acct, c, est)
	if err != nil {
		e.t.Fatalf("Reserve(%+v): %v", c, err)
	}
	return d
}

func (e *limEnv) mustOK(c Cost, est int64) Reservation {
	e.t.Helper()
	d := e.reserve(c, est)
	if !d.OK {
		e.t.Fatalf("Reserve(%+v) = %+v, want OK", c, d)
	}
	return d.Reservation
}

func (e *limEnv) snap() Snapshot {
	e.t.Helper()
	s, err := e.l.Snapshot(e.ctx, e.acct)
	if err != nil {
		e.t.Fatalf("Snapshot: %v", err)
	}
	return s
}

func approx(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 0.01 {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

// hi builds a HeaderInfo with the given limits and remaining figures (-1 = unknown).
func hi(rLimit, rRemaining, tLimit, tRemaining int64) HeaderInfo {
	info := Unknown
	info.Requests.Limit, info.Requests.Remaining = rLimit, rRemaining
	info.Tokens.Limit, info.Tokens.Remaining = tLimit, tRemaining
	return info
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		field string // "" = valid
	}{
		{"zero is valid", Config{}, ""},
		{"all set", Config{RPM: 10, TPM: 100, DailyRequests: 5, DailyTokens: 50, Threshold: 1, Burst: time.Second, ReservationTTL: time.Minute}, ""},
		{"negative RPM", Config{RPM: -1}, "RPM"},
		{"negative TPM", Config{TPM: -1}, "TPM"},
		{"negative daily requests", Config{DailyRequests: -1}, "DailyRequests"},
		{"negative daily tokens", Config{DailyTokens: -5}, "DailyTokens"},
		{"threshold above 1", Config{Threshold: 1.5}, "Threshold"},
		{"negative threshold", Config{Threshold: -0.1}, "Threshold"},
		{"tiny TTL", Config{ReservationTTL: time.Millisecond}, "ReservationTTL"},
		{"negative burst", Config{Burst: -time.Second}, "Burst"},
		{"huge burst", Config{Burst: 2 * time.Hour}, "Burst"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.WithDefaults().Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("Validate = %v, want an error naming %s", err, tt.field)
			}
		})
	}
	d := Config{}.WithDefaults()
	if d.Threshold != ThresholdDefault || d.Burst != BurstDefault || d.ReservationTTL != ReservationTTLDefault || d.Location != time.UTC || d.Clock == nil {
		t.Fatalf("WithDefaults = %+v", d)
	}
}

func TestRefill(t *testing.T) {
	t.Run("requests", func(t *testing.T) {
		e := setupLimiter(t, Config{RPM: 60})
		for i := 0; i < 60; i++ {
			e.mustOK(Cost{Requests: 1}, 0)
		}
		if d := e.reserve(Cost{Requests: 1}, 0); d.OK || d.Wait != time.Second {
			t.Fatalf("61st reserve = %+v, want wait 1s", d)
		}
		approx(t, "available when empty", e.snap().Requests.Available, 0)
		e.clk.Advance(time.Second)
		s := e.snap()
		approx(t, "available after 1s", s.Requests.Available, 1) // limit/60
		if s.Requests.ResetIn != 59*time.Second || s.Requests.Source != "config" || s.Requests.Limit != 60 {
			t.Fatalf("requests bucket = %+v", s.Requests)
		}
		e.mustOK(Cost{Requests: 1}, 0)
		if d := e.reserve(Cost{Requests: 1}, 0); d.OK {
			t.Fatalf("second reserve after 1s admitted: %+v", d)
		}
	})
	t.Run("tokens", func(t *testing.T) {
		e := setupLimiter(t, Config{TPM: 6000})
		e.mustOK(Cost{Requests: 1, Tokens: 6000}, 0)
		e.clk.Advance(time.Second)
		approx(t, "tokens after 1s", e.snap().Tokens.Available, 100)
		e.mustOK(Cost{Requests: 1, Tokens: 100}, 0)
		if d := e.reserve(Cost{Requests: 1, Tokens: 1}, 0); d.OK {
			t.Fatalf("reserve past the refill admitted: %+v", d)
		}
		// Never above capacity, however long it idles.
		e.clk.Advance(time.Hour)
		approx(t, "tokens after an hour", e.snap().Tokens.Available, 6000)
	})
	t.Run("burst sets configured capacity", func(t *testing.T) {
		e := setupLimiter(t, Config{RPM: 600, Burst: 10 * time.Second})
		n := 0
		for e.reserve(Cost{Requests: 1}, 0).OK {
			n++
		}
		if n != 100 {
			t.Fatalf("admitted %d from a full bucket, want 100 (600/min * 10s)", n)
		}
	})
}

func TestWait(t *testing.T) {
	e := setupLimiter(t, Config{RPM: 60, TPM: 60000}) // 1 request/s, 1 token/ms
	e.mustOK(Cost{Requests: 1, Tokens: 60000}, 0)
	tests := []struct {
		name string
		cost Cost
		want time.Duration
	}{
		{"tokens bind", Cost{Tokens: 500}, 500 * time.Millisecond},
		{"fractional deficit rounds up", Cost{Tokens: 1}, time.Millisecond},
		{"requests bind", Cost{Requests: 60, Tokens: 100}, time.Second}, // 59 requests held, 1 short
		{"the slower bucket decides", Cost{Requests: 60, Tokens: 5000}, 5 * time.Second},
	}
	// 59 requests are left, 0 tokens; the clock does not move.
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.reserve(tt.cost, 0)
			if d.OK || d.Paused || d.DailyExhausted {
				t.Fatalf("Reserve = %+v, want a wait", d)
			}
			if d.Wait != tt.want {
				t.Fatalf("Wait = %v, want %v", d.Wait, tt.want)
			}
		})
	}
	e.clk.Advance(500 * time.Millisecond)
	e.mustOK(Cost{Tokens: 500}, 0)
}

func TestConcurrentReservationsNeverExceed(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		cost Cost
		want int64
	}{
		{"requests", Config{RPM: 20}, Cost{Requests: 1, Tokens: 10}, 20},
		{"tokens", Config{TPM: 10000}, Cost{Requests: 1, Tokens: 300}, 33},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setupLimiter(t, tt.cfg)
			var ok, waits atomic.Int64
			var wg sync.WaitGroup
			for i := 0; i < 50; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// Each goroutine is its own "worker" with its own Limiter.
					d, err := e.with(tt.cfg).Reserve(e.ctx, e.acct, tt.cost, 0)
					if err != nil {
						t.Error(err)
						return
					}
					if d.OK {
						ok.Add(1)
					} else if d.Wait > 0 {
						waits.Add(1)
					}
				}()
			}
			wg.Wait()
			if ok.Load() != tt.want || ok.Load()+waits.Load() != 50 {
				t.Fatalf("admitted %d, told to wait %d; want %d admitted of 50", ok.Load(), waits.Load(), tt.want)
			}
			if got := e.snap().InFlight; got != tt.want {
				t.Fatalf("in flight = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestSettleReconcilesUsage(t *testing.T) {
	// Reserved: 400 estimated input + 600 max output = 1000 tokens.
	tests := []struct {
		name      string
		usage     Usage
		wantLevel float64 // of 100000
		wantDaily int64
	}{
		// The provider charged 300 input + 600 max output: 100 come back.
		// Unused output does not: OpenAI counted max_output_tokens at admission.
		{"smaller", Usage{InputTokens: 300, OutputTokens: 100, TotalTokens: 400}, 100000 - 900, 400},
		// Input underestimated by 100: 100 more are taken.
		{"larger", Usage{InputTokens: 500, OutputTokens: 600, TotalTokens: 1100}, 100000 - 1100, 1100},
		{"exact", Usage{InputTokens: 400, OutputTokens: 600}, 100000 - 1000, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setupLimiter(t, Config{TPM: 100000})
			r := e.mustOK(Cost{Requests: 1, Tokens: 1000}, 400)
			approx(t, "level after reserve", e.snap().Tokens.Available, 99000)
			u := tt.usage
			if err := e.l.Settle(e.ctx, r, Unknown, &u); err != nil {
				t.Fatal(err)
			}
			s := e.snap()
			approx(t, "level after settle", s.Tokens.Available, tt.wantLevel)
			if s.Daily.Tokens != tt.wantDaily || s.Daily.Requests != 1 || s.InFlight != 0 {
				t.Fatalf("daily = %+v, in flight %d; want %d tokens, 1 request, 0 in flight", s.Daily, s.InFlight, tt.wantDaily)
			}
			if s.EstimateSamples != 1 {
				t.Fatalf("estimate samples = %d, want 1", s.EstimateSamples)
			}
			approx(t, "estimate abs error", s.EstimateMeanAbsErr, math.Abs(400-float64(u.InputTokens)))
			approx(t, "estimate bias", s.EstimateBias, (400-float64(u.InputTokens))/float64(u.InputTokens))

			// Settling again changes nothing.
			if err := e.l.Settle(e.ctx, r, Unknown, &Usage{InputTokens: 1}); err != nil {
				t.Fatal(err)
			}
			if s2 := e.snap(); s2.Tokens.Available != s.Tokens.Available || s2.Daily != s.Daily || s2.EstimateSamples != 1 {
				t.Fatalf("second settle moved state: %+v -> %+v", s, s2)
			}
		})
	}
	t.Run("no estimate refunds nothing", func(t *testing.T) {
		e := setupLimiter(t, Config{TPM: 100000})
		r := e.mustOK(Cost{Requests: 1, Tokens: 1000}, 0)
		if err := e.l.Settle(e.ctx, r, Unknown, &Usage{InputTokens: 100, OutputTokens: 100}); err != nil {
			t.Fatal(err)
		}
		s := e.snap()
		approx(t, "level", s.Tokens.Available, 99000)
		if s.Daily.Tokens != 200 || s.EstimateSamples != 0 {
			t.Fatalf("snapshot = %+v", s)
		}
	})
}

func TestRefund(t *testing.T) {
	e := setupLimiter(t, Config{RPM: 10, TPM: 10000, DailyRequests: 100, DailyTokens: 100000})
	r := e.mustOK(Cost{Requests: 1, Tokens: 4000}, 0)
	if err := e.l.Refund(e.ctx, r, Unknown); err != nil {
		t.Fatal(err)
	}
	s := e.snap()
	approx(t, "requests", s.Requests.Available, 10)
	approx(t, "tokens", s.Tokens.Available, 10000)
	if s.Daily.Requests != 0 || s.Daily.Tokens != 0 || s.InFlight != 0 {
		t.Fatalf("after refund: %+v", s)
	}
	// A second refund must not mint capacity beyond what was taken.
	e.mustOK(Cost{Requests: 1, Tokens: 4000}, 0)
	if err := e.l.Refund(e.ctx, r, Unknown); err != nil {
		t.Fatal(err)
	}
	approx(t, "tokens after a repeated refund", e.snap().Tokens.Available, 6000)
}

func TestUnknownOutcomeKeepsDebit(t *testing.T) {
	e := setupLimiter(t, Config{TPM: 10000})
	r := e.mustOK(Cost{Requests: 1, Tokens: 4000}, 1000)
	if err := e.l.Settle(e.ctx, r, Unknown, nil); err != nil {
		t.Fatal(err)
	}
	s := e.snap()
	approx(t, "tokens", s.Tokens.Available, 6000)
	if s.InFlight != 0 || s.Daily.Tokens != 4000 || s.EstimateSamples != 0 {
		t.Fatalf("after unknown outcome: %+v", s)
	}
}

func TestHeaderSync(t *testing.T) {
	t.Run("learns limits and lowers the level", func(t *testing.T) {
		e := setupLimiter(t, Config{})
		r := e.mustOK(Cost{Requests: 1, Tokens: 1000}, 0)
		s := e.snap()
		if s.Tokens.Limit != -1 || s.Tokens.Source != "unknown" {
			t.Fatalf("before any response: %+v", s.Tokens)
		}
		e.clk.Advance(2 * time.Second)
		// Someone else spent most of the account: 4000 of 10000 tokens are left.
		if err := e.l.Settle(e.ctx, r, hi(100, 50, 10000, 4000), &Usage{InputTokens: 500, OutputTokens: 500}); err != nil {
			t.Fatal(err)
		}
		s = e.snap()
		if s.Tokens.Limit != 10000 || s.Tokens.Source != "headers" || s.Requests.Limit != 100 {
			t.Fatalf("after headers: %+v / %+v", s.Requests, s.Tokens)
		}
		approx(t, "tokens", s.Tokens.Available, 4000)
		approx(t, "requests", s.Requests.Available, 50)
		if d := e.reserve(Cost{Requests: 1, Tokens: 4001}, 0); d.OK {
			t.Fatalf("reserved past the provider's remaining: %+v", d)
		}
		e.clk.Advance(6 * time.Second) // 10000/60 per s
		approx(t, "refilled at the learned rate", e.snap().Tokens.Available, 5000)
	})
	t.Run("subtracts reservations made after", func(t *testing.T) {
		e := setupLimiter(t, Config{TPM: 10000})
		a := e.mustOK(Cost{Requests: 1, Tokens: 1000}, 0)
		e.clk.Advance(time.Millisecond)
		e.mustOK(Cost{Requests: 1, Tokens: 2000}, 0) // the provider may not have seen it when it answered a
		if err := e.l.Settle(e.ctx, a, hi(-1, -1, 10000, 9000), nil); err != nil {
			t.Fatal(err)
		}
		approx(t, "tokens", e.snap().Tokens.Available, 7000)
	})
	t.Run("raises the level when the provider has more", func(t *testing.T) {
		e := setupLimiter(t, Config{TPM: 10000})
		a := e.mustOK(Cost{Requests: 1, Tokens: 8000}, 0)
		if err := e.l.Settle(e.ctx, a, hi(-1, -1, 10000, 9500), nil); err != nil {
			t.Fatal(err)
		}
		approx(t, "tokens", e.snap().Tokens.Available, 9500)
	})
	t.Run("an older response does not move the level", func(t *testing.T) {
		e := setupLimiter(t, Config{TPM: 10000})
		a := e.mustOK(Cost{Requests: 1, Tokens: 1000}, 0)
		e.clk.Advance(time.Millisecond)
		b := e.mustOK(Cost{Requests: 1, Tokens: 1000}, 0)
		if err := e.l.Settle(e.ctx, b, hi(-1, -1, 10000, 5000), nil); err != nil {
			t.Fatal(err)
		}
		if err := e.l.Settle(e.ctx, a, hi(-1, -1, 10000, 9000), nil); err != nil {
			t.Fatal(err)
		}
		approx(t, "tokens", e.snap().Tokens.Available, 5000)
	})
	t.Run("configured caps beat larger learned limits", func(t *testing.T) {
		e := setupLimiter(t, Config{RPM: 30, TPM: 5000})
		r := e.mustOK(Cost{Requests: 1, Tokens: 100}, 0)
		if err := e.l.Settle(e.ctx, r, hi(500, 499, 100000, 90000), nil); err != nil {
			t.Fatal(err)
		}
		s := e.snap()
		if s.Tokens.Limit != 5000 || s.Tokens.Source != "config" || s.Requests.Limit != 30 {
			t.Fatalf("buckets = %+v / %+v", s.Requests, s.Tokens)
		}
		approx(t, "tokens capped at capacity", s.Tokens.Available, 5000)
		approx(t, "requests capped at capacity", s.Requests.Available, 30)
		if _, err := e.l.Reserve(e.ctx, e.acct, Cost{Requests: 1, Tokens: 5001}, 0); !errors.Is(err, ErrCostExceedsLimit) {
			t.Fatalf("Reserve over the configured cap: %v", err)
		}
	})
	t.Run("smaller learned limits beat configured caps", func(t *testing.T) {
		e := setupLimiter(t, Config{TPM: 50000})
		r := e.mustOK(Cost{Requests: 1, Tokens: 100}, 0)
		if err := e.l.Settle(e.ctx, r, hi(-1, -1, 20000, 19900), nil); err != nil {
			t.Fatal(err)
		}
		if s := e.snap(); s.Tokens.Limit != 20000 || s.Tokens.Source != "headers" {
			t.Fatalf("tokens = %+v", s.Tokens)
		}
	})
	t.Run("infers a limit from remaining and reset", func(t *testing.T) {
		e := setupLimiter(t, Config{})
		r := e.mustOK(Cost{Requests: 1, Tokens: 100}, 0)
		info := Unknown
		info.Tokens = Bucket{Limit: -1, Remaining: 9000, Reset: 6 * time.Second} // 1000 short of full, 10000/min
		if err := e.l.Settle(e.ctx, r, info, nil); err != nil {
			t.Fatal(err)
		}
		s := e.snap()
		if s.Tokens.Limit != 10000 {
			t.Fatalf("tokens = %+v, want limit 10000", s.Tokens)
		}
		approx(t, "tokens", s.Tokens.Available, 9000)
	})
	t.Run("refund syncs a 429's headers", func(t *testing.T) {
		e := setupLimiter(t, Config{TPM: 10000})
		r := e.mustOK(Cost{Requests: 1, Tokens: 1000}, 0)
		if err := e.l.Refund(e.ctx, r, hi(-1, -1, 10000, 0)); err != nil {
			t.Fatal(err)
		}
		if err := e.l.RecordThrottle(e.ctx, e.acct); err != nil {
			t.Fatal(err)
		}
		s := e.snap()
		approx(t, "tokens", s.Tokens.Available, 0)
		if s.Throttled != 1 {
			t.Fatalf("throttled = %d, want 1", s.Throttled)
		}
	})
}

func TestDailyRollover(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	e := setupLimiter(t, Config{DailyRequests: 10, DailyTokens: 1000000, Threshold: 0.5, Location: ny, Probe: -1})
	// 23:59 in New York is 03:59 UTC the next day: the UTC date differs.
	e.clk.Set(time.Date(2025, 3, 10, 23, 59, 0, 0, ny))
	for i := 0; i < 5; i++ {
		e.mustOK(Cost{Requests: 1, Tokens: 10}, 0)
	}
	d := e.reserve(Cost{Requests: 1, Tokens: 10}, 0)
	wantReset := time.Date(2025, 3, 11, 0, 0, 0, 0, ny)
	if d.OK || !d.DailyExhausted || !d.DailyResetAt.Equal(wantReset) {
		t.Fatalf("6th of 10 at threshold 0.5 = %+v, want exhausted until %v", d, wantReset)
	}
	s := e.snap()
	if s.Daily.Date != "2025-03-10" || s.Daily.Requests != 5 || s.Daily.Tokens != 50 {
		t.Fatalf("daily = %+v", s.Daily)
	}
	e.clk.Advance(61 * time.Second)
	if s := e.snap(); s.Daily.Date != "2025-03-11" || s.Daily.Requests != 0 {
		t.Fatalf("after midnight: %+v", s.Daily)
	}
	e.mustOK(Cost{Requests: 1, Tokens: 10}, 0)

	t.Run("tokens", func(t *testing.T) {
		e := setupLimiter(t, Config{DailyTokens: 1000}) // stop at 800
		e.mustOK(Cost{Requests: 1, Tokens: 800}, 0)
		if d := e.reserve(Cost{Requests: 1, Tokens: 1}, 0); !d.DailyExhausted {
			t.Fatalf("Reserve = %+v, want daily exhausted", d)
		}
	})
}

func TestPauseRecord(t *testing.T) {
	tests := []struct {
		name       string
		until      time.Duration // relative to now; 0 = indefinite
		wantPaused bool
	}{
		{"until later", time.Minute, true},
		{"indefinite", 0, true},
		{"already over", -time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setupLimiter(t, Config{RPM: 10})
			var until int64
			if tt.until != 0 {
				until = limStart.Add(tt.until).UnixMilli()
			}
			if err := e.rdb.Client.HSet(e.ctx, keys.Pause(e.acct), "until", until, "reason", "test").Err(); err != nil {
				t.Fatal(err)
			}
			d := e.reserve(Cost{Requests: 1}, 0)
			if d.Paused != tt.wantPaused || d.OK == tt.wantPaused {
				t.Fatalf("Reserve = %+v, want paused %v", d, tt.wantPaused)
			}
			if tt.wantPaused {
				if tt.until == 0 && !d.PausedUntil.IsZero() || tt.until != 0 && !d.PausedUntil.Equal(limStart.Add(tt.until)) {
					t.Fatalf("PausedUntil = %v", d.PausedUntil)
				}
				approx(t, "requests untouched", e.snap().Requests.Available, 10)
			}
		})
	}
}

func TestCostExceedsLimit(t *testing.T) {
	e := setupLimiter(t, Config{TPM: 1000})
	if _, err := e.l.Reserve(e.ctx, e.acct, Cost{Requests: 1, Tokens: 1001}, 0); !errors.Is(err, ErrCostExceedsLimit) {
		t.Fatalf("err = %v, want ErrCostExceedsLimit", err)
	}
	e.mustOK(Cost{Requests: 1, Tokens: 1000}, 0)
	if _, err := e.l.Reserve(e.ctx, "bad{name}", Cost{Requests: 1}, 0); err == nil {
		t.Fatal("a bad account name was accepted")
	}
}

func TestInflightExpiry(t *testing.T) {
	e := setupLimiter(t, Config{TPM: 60000, ReservationTTL: time.Second}) // 1000 tokens/s
	r := e.mustOK(Cost{Requests: 1, Tokens: 60000}, 0)
	if got := e.snap().InFlight; got != 1 {
		t.Fatalf("in flight = %d, want 1", got)
	}
	e.clk.Advance(1001 * time.Millisecond)
	if got := e.snap().InFlight; got != 0 {
		t.Fatalf("in flight after the TTL = %d, want 0", got)
	}
	e.mustOK(Cost{Requests: 1, Tokens: 1}, 0) // drops the expired member
	if n, err := e.rdb.Client.ZCard(e.ctx, keys.Inflight(e.acct)).Result(); err != nil || n != 1 {
		t.Fatalf("inflight members = %d, %v; want only the new one", n, err)
	}
	// An expired reservation's debit stays: a late refund gives nothing back.
	if err := e.l.Refund(e.ctx, r, Unknown); err != nil {
		t.Fatal(err)
	}
	approx(t, "tokens", e.snap().Tokens.Available, 1000)
}

// simProvider is a test model of OpenAI's limiter: a requests bucket and a
// tokens bucket, capacity = per-minute limit, refilled continuously, charging
// 1 request and input + max output tokens at admission.
type simProvider struct {
	rpm, tpm  float64
	req, tok  float64
	last      time.Time
	charged   float64 // tokens admitted in total
	admitted  int
	throttled int
	tokCap    float64 // token bucket capacity (0 = tpm, a full minute)
}

func (p *simProvider) refill(now time.Time) {
	dt := now.Sub(p.last).Seconds()
	p.last = now
	p.req = min(p.rpm, p.req+dt*p.rpm/60)
	p.tok = min(cmp.Or(p.tokCap, p.tpm), p.tok+dt*p.tpm/60)
}

// admitTokens is admit on the token bucket alone, with the headers of a
// provider without a request limit: limit, remaining and reset of tokens.
func (p *simProvider) admitTokens(now time.Time, tokens float64) (bool, HeaderInfo) {
	ok, _ := p.admit(now, tokens)
	info := hi(-1, -1, int64(p.tpm), int64(math.Floor(p.tok)))
	info.Tokens.Reset = time.Duration((cmp.Or(p.tokCap, p.tpm) - p.tok) / (p.tpm / 60) * float64(time.Second)).Round(time.Millisecond)
	return ok, info
}

// admit charges tokens if both buckets hold enough and returns the headers
// the provider would send (remaining measured at admission).
func (p *simProvider) admit(now time.Time, tokens float64) (bool, HeaderInfo) {
	p.refill(now)
	ok := p.req >= 1 && p.tok >= tokens
	if ok {
		p.req--
		p.tok -= tokens
		p.charged += tokens
		p.admitted++
	} else {
		p.throttled++
	}
	return ok, hi(int64(p.rpm), int64(math.Floor(p.req)), int64(p.tpm), int64(math.Floor(p.tok)))
}

// simEvents is the event queue of the simulations: next pops the earliest
// event (a linear scan is plenty for a few dozen workers; ties go to the
// first pushed).
type simEvents[E any] struct {
	list []E
	at   func(E) time.Time
}

func (q *simEvents[E]) push(e E) { q.list = append(q.list, e) }

// next pops the earliest event due no later than end, dropping those due
// after it; false once none is left.
func (q *simEvents[E]) next(end time.Time) (E, bool) {
	for len(q.list) > 0 {
		k := 0
		for i := range q.list {
			if q.at(q.list[i]).Before(q.at(q.list[k])) {
				k = i
			}
		}
		ev := q.list[k]
		q.list = append(q.list[:k], q.list[k+1:]...)
		if !q.at(ev).After(end) {
			return ev, true
		}
	}
	var none E
	return none, false
}

// simRand is a tiny deterministic generator (no global state).
type simRand uint64

func (r *simRand) intn(n int) int {
	*r ^= *r << 13
	*r ^= *r >> 7
	*r ^= *r << 17
	return int(uint64(*r) % uint64(n))
}

// TestSimulation drives several workers, each with its own Limiter, against
// the provider model on a fake clock. Every worker has its own estimate error
// and latency; an outside client may spend part of the account unseen.
func TestSimulation(t *testing.T) {
	tests := []struct {
		name      string
		workers   int
		outside   float64 // share of the TPM spent by a client the limiter never sees
		minShare  float64
		max429Pct float64
	}{
		{"8 workers", 8, 0, 0.95, 0.5},
		{"16 workers", 16, 0, 0.95, 0.5},
		// Spend the limiter cannot see is only learned from the next response,
		// so some 429s are expected; the pause gate handles those.
		{"8 workers and an outside client", 8, 0.25, 0.90, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const (
				rpm, tpm  = 500, 40000
				maxOutput = 500
				minutes   = 5
			)
			e := setupLimiter(t, Config{}) // no configured caps: everything is learned
			p := &simProvider{rpm: rpm, tpm: tpm, req: rpm, tok: tpm, last: limStart}
			rng := simRand(42)

			type job struct {
				r     Reservation
				info  HeaderInfo
				usage Usage
			}
			type event struct {
				at     time.Time
				worker int
				done   *job
			}
			limiters := make([]*Limiter, tt.workers)
			q := simEvents[event]{at: func(e event) time.Time { return e.at }}
			for i := range limiters {
				limiters[i] = e.with(Config{})
				q.push(event{at: limStart.Add(time.Duration(i) * time.Millisecond), worker: i})
			}
			end := limStart.Add(minutes * time.Minute)
			nextOutside := limStart
			for {
				ev, ok := q.next(end)
				if !ok {
					break
				}
				for tt.outside > 0 && !nextOutside.After(ev.at) { // 1s ticks of outside spend
					p.refill(nextOutside)
					p.tok -= tt.outside * tpm / 60
					nextOutside = nextOutside.Add(time.Second)
				}
				e.clk.Set(ev.at)
				l := limiters[ev.worker]
				if j := ev.done; j != nil {
					if err := l.Settle(e.ctx, j.r, j.info, &j.usage); err != nil {
						t.Fatal(err)
					}
					q.push(event{at: ev.at, worker: ev.worker})
					continue
				}
				input := 200 + rng.intn(1600)
				est := input * (90 + rng.intn(21)) / 100 // ±10%
				d, err := l.Reserve(e.ctx, e.acct, Cost{Requests: 1, Tokens: int64(est + maxOutput)}, int64(est))
				if err != nil {
					t.Fatal(err)
				}
				if !d.OK {
					q.push(event{at: ev.at.Add(d.Wait), worker: ev.worker})
					continue
				}
				ok, info := p.admit(ev.at, float64(input+maxOutput))
				if !ok {
					if err := l.Refund(e.ctx, d.Reservation, info); err != nil {
						t.Fatal(err)
					}
					if err := l.RecordThrottle(e.ctx, e.acct); err != nil {
						t.Fatal(err)
					}
					q.push(event{at: ev.at.Add(time.Second), worker: ev.worker})
					continue
				}
				out := 50 + rng.intn(maxOutput-50)
				latency := time.Duration(1000+rng.intn(3000)) * time.Millisecond
				q.push(event{at: ev.at.Add(latency), worker: ev.worker, done: &job{
					r: d.Reservation, info: info,
					usage: Usage{InputTokens: int64(input), OutputTokens: int64(out), TotalTokens: int64(input + out)},
				}})
			}
			// The most the provider could have admitted: a full bucket plus the
			// refill over the run, less what the outside client took.
			possible := tpm + tpm*minutes*(1-tt.outside)
			share := p.charged / possible
			pct429 := 100 * float64(p.throttled) / float64(p.admitted+p.throttled)
			s := e.snap()
			t.Logf("%d workers, outside %.0f%%: %d requests admitted, %.0f tokens = %.1f%% of the possible %.0f; %d 429s (%.2f%%); estimator bias %+.3f, mean abs err %.1f",
				tt.workers, 100*tt.outside, p.admitted, p.charged, 100*share, possible, p.throttled, pct429, s.EstimateBias, s.EstimateMeanAbsErr)
			if share < tt.minShare || share > 1.001 {
				t.Errorf("achieved %.3f of the limit, want %.2f..1", share, tt.minShare)
			}
			if pct429 > tt.max429Pct {
				t.Errorf("%.2f%% of requests got a 429, want <= %.1f%%", pct429, tt.max429Pct)
			}
			if s.Throttled != int64(p.throttled) {
				t.Errorf("snapshot counted %d 429s, provider sent %d", s.Throttled, p.throttled)
			}
		})
	}
}
