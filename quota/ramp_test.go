package quota

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// rampEnv learns a 600 RPM / 10M TPM limit from headers, as after a first
// response, so the ramp acts on learned limits.
func rampEnv(t *testing.T, cfg Config) *limEnv {
	t.Helper()
	e := setupLimiter(t, cfg)
	r := e.mustOK(Cost{Requests: 1, Tokens: 10}, 0)
	if err := e.l.Settle(e.ctx, r, hi(600, 599, 10_000_000, 9_999_990), &Usage{TotalTokens: 10}); err != nil {
		t.Fatal(err)
	}
	return e
}

// runMinute admits every request that fits, checking every 50ms of fake
// time for one minute, settles each at once, and returns how many it admitted.
func (e *limEnv) runMinute() int {
	e.t.Helper()
	n := 0
	for step := 0; step < 1200; step++ {
		for {
			d := e.reserve(Cost{Requests: 1, Tokens: 10}, 0)
			if !d.OK {
				break
			}
			n++
			if err := e.l.Settle(e.ctx, d.Reservation, Unknown, &Usage{TotalTokens: 10}); err != nil {
				e.t.Fatal(err)
			}
		}
		e.clk.Advance(50 * time.Millisecond)
	}
	return n
}

func (e *limEnv) slowDown() {
	e.t.Helper()
	if err := e.l.SlowDown(e.ctx, e.acct); err != nil {
		e.t.Fatalf("SlowDown: %v", err)
	}
}

// rampMinute is the requests a 600 RPM limit admits in the minute starting
// at m minutes after a cut to f0, at +50% per 15 minutes.
func rampMinute(f0, m float64) float64 {
	k := math.Log(1.5) / 15 // per minute
	return 600 * f0 * (math.Exp(k*(m+1)) - math.Exp(k*m)) / k
}

func within(t *testing.T, what string, got int, want, tol float64) {
	t.Helper()
	if math.Abs(float64(got)-want) > tol {
		t.Fatalf("%s = %d, want %.1f ± %.1f", what, got, want, tol)
	}
}

func TestRampConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{RampCut: 1}, "RampCut"},
		{Config{RampCut: -0.5}, "RampCut"},
		{Config{RampGrowth: -1}, "RampGrowth"},
		{Config{RampGrowth: 11}, "RampGrowth"},
		{Config{RampInterval: time.Millisecond}, "RampInterval"},
		{Config{RampInterval: 25 * time.Hour}, "RampInterval"},
	} {
		err := tt.cfg.WithDefaults().Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", tt.cfg, err, tt.want)
		}
	}
	c := Config{}.WithDefaults()
	if c.RampCut != 0.5 || c.RampGrowth != 0.5 || c.RampInterval != 15*time.Minute {
		t.Fatalf("defaults = %v %v %v", c.RampCut, c.RampGrowth, c.RampInterval)
	}
}

func TestSlowDownRamp(t *testing.T) {
	t.Run("no ramp leaves the rate alone", func(t *testing.T) {
		e := rampEnv(t, Config{})
		e.runMinute() // drain the full bucket
		within(t, "admitted in a minute", e.runMinute(), 600, 2)
		if f := e.snap().RampFraction; f != 1 {
			t.Fatalf("RampFraction = %v, want 1", f)
		}
	})

	t.Run("a slow_down halves the admitted rate", func(t *testing.T) {
		e := rampEnv(t, Config{})
		e.runMinute()
		e.slowDown()
		s := e.snap()
		approx(t, "RampFraction", s.RampFraction, 0.5)
		if s.Requests.Limit != 300 || s.Tokens.Limit != 5_000_000 || s.Requests.Source != "ramp" {
			t.Fatalf("limits in force = %+v / %+v, want 300 and 5M from the ramp", s.Requests, s.Tokens)
		}
		within(t, "admitted in the minute after", e.runMinute(), rampMinute(0.5, 0), 3)
	})

	t.Run("growth is +50% per interval, capped at 1", func(t *testing.T) {
		e := rampEnv(t, Config{})
		e.slowDown()
		e.clk.Advance(15 * time.Minute)
		approx(t, "RampFraction after one interval", e.snap().RampFraction, 0.75)
		e.runMinute() // drain what the idle quarter hour refilled
		within(t, "admitted in the 17th minute", e.runMinute(), rampMinute(0.5, 16), 3)
		e.clk.Advance(13 * time.Minute) // 30 min after the cut: 0.5*1.5^2 = 1.125
		s := e.snap()
		if s.RampFraction != 1 || s.Requests.Limit != 600 || s.Requests.Source != "headers" {
			t.Fatalf("after two intervals: fraction %v, requests %+v; want 1 and the learned 600", s.RampFraction, s.Requests)
		}
		e.runMinute()
		within(t, "admitted once recovered", e.runMinute(), 600, 2)
	})

	t.Run("a second slow_down cuts again from the current fraction", func(t *testing.T) {
		e := rampEnv(t, Config{})
		e.slowDown()
		e.clk.Advance(5 * time.Minute)
		cur := 0.5 * math.Pow(1.5, 1.0/3)
		approx(t, "RampFraction before", e.snap().RampFraction, cur)
		e.slowDown()
		approx(t, "RampFraction after the second cut", e.snap().RampFraction, cur/2)
		// More slow_downs within the cooldown belong to the same incident.
		e.slowDown()
		approx(t, "RampFraction within the cooldown", e.snap().RampFraction, cur/2)
		for range 10 {
			e.clk.Advance(SlowDownCooldown)
			e.slowDown()
		}
		approx(t, "RampFraction floor", e.snap().RampFraction, RampMinFraction)
	})

	t.Run("configured cut, growth and interval", func(t *testing.T) {
		e := rampEnv(t, Config{RampCut: 0.25, RampGrowth: 1, RampInterval: time.Minute})
		e.slowDown()
		approx(t, "RampFraction", e.snap().RampFraction, 0.25)
		e.clk.Advance(time.Minute)
		approx(t, "RampFraction after a minute", e.snap().RampFraction, 0.5)
	})

	t.Run("settle and refund respect the ramped capacity", func(t *testing.T) {
		e := rampEnv(t, Config{}) // bucket nearly full: 599 requests
		r := e.mustOK(Cost{Requests: 1, Tokens: 10}, 0)
		e.slowDown()
		if err := e.l.Refund(e.ctx, r, Unknown); err != nil {
			t.Fatal(err)
		}
		approx(t, "requests available", e.snap().Requests.Available, 300)
		// A full-bucket header sync cannot lift the level past the ramp either.
		r = e.mustOK(Cost{Requests: 1, Tokens: 10}, 0)
		if err := e.l.Settle(e.ctx, r, hi(600, 599, 10_000_000, 9_999_990), &Usage{TotalTokens: 10}); err != nil {
			t.Fatal(err)
		}
		approx(t, "requests available after sync", e.snap().Requests.Available, 299)
	})

	t.Run("a cost above the ramped capacity waits for a full bucket", func(t *testing.T) {
		e := setupLimiter(t, Config{TPM: 1000})
		e.slowDown() // capacity 500 tokens
		d, err := e.l.Reserve(e.ctx, e.acct, Cost{Requests: 1, Tokens: 800}, 0)
		if err != nil || !d.OK {
			t.Fatalf("Reserve 800 of a 500-token ramped bucket = %+v, %v; want admitted (bucket full)", d, err)
		}
		d = e.reserve(Cost{Requests: 1, Tokens: 800}, 0)
		if d.OK || d.Wait <= 0 {
			t.Fatalf("second Reserve = %+v, want a wait", d)
		}
		if _, err := e.l.Reserve(e.ctx, e.acct, Cost{Requests: 1, Tokens: 1001}, 0); !errors.Is(err, ErrCostExceedsLimit) {
			t.Fatalf("Reserve above the full limit: %v, want ErrCostExceedsLimit", err)
		}
	})
}
