package quota

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"
)

// Prompt kinds of the calibration simulations: how a text's tokenizer
// count compares with its characters/4. Prose has fewer tokens than
// characters/4, code a few more, CJK text several times more.
var simKinds = []struct {
	name       string
	tokPerChar float64 // tokenizer count per unit of the chars basis
}{
	{"prose", 0.85}, {"code", 1.2}, {"cjk", 3.0},
}

// simCharge is a provider's rate-limit charge for a request's input.
type simCharge struct {
	name string
	// charge returns the input tokens charged; u is uniform in [0, 1).
	charge func(in Input, u float64) float64
}

var (
	chargeChars  = simCharge{"chars/4", func(in Input, _ float64) float64 { return float64(in.Chars) }}
	chargeTokens = simCharge{"tokenizer", func(in Input, _ float64) float64 { return float64(in.Tokens) }}
	chargeMore   = simCharge{"tokenizer+20%", func(in Input, _ float64) float64 { return 1.2 * float64(in.Tokens) }}
	chargeLess   = simCharge{"tokenizer-20%", func(in Input, _ float64) float64 { return 0.8 * float64(in.Tokens) }}
	chargeNoisy  = simCharge{"chars/4±10%", func(in Input, u float64) float64 { return float64(in.Chars) * (0.9 + 0.2*u) }}
)

// simInput draws a request's input bases for a kind (chars basis 50..550).
func simInput(rng *simRand, kind int) Input {
	chars := int64(50 + rng.intn(500))
	return Input{Chars: chars, Tokens: int64(math.Round(float64(chars) * simKinds[kind].tokPerChar))}
}

func (r *simRand) float() float64 { return float64(r.intn(1<<20)) / (1 << 20) }

// simRun is one simulated batch: K workers, each a Limiter (as a worker
// process would have), reserving with ReserveRequest against a provider
// model whose token bucket holds burst of refill and charges by charge.
type simRun struct {
	workers, concurrency int
	tpm                  float64
	burst                time.Duration
	latency              time.Duration // each call takes latency ± latency/2
	maxOutput            int64
	kinds                []int // prompt kinds drawn from, uniformly
	charge               simCharge
	duration             time.Duration
	// afterResponses, when set, is called after each settled response
	// with the number settled so far.
	afterResponses func(n int)
	// halveAt, when > 0, halves the provider's token limit (and bucket)
	// that long into the run, as a provider lowering a tier would.
	halveAt time.Duration
}

type simResult struct {
	admitted, throttled int
	charged, possible   float64 // tokens charged after warm-up, and the most the provider could have admitted then
	// With halveAt: 429s after the halving, and the tokens charged from 5 s
	// after it to the end against the most the halved limit allowed.
	throttledAfter, admittedAfter int
	chargedAfter, possibleAfter   float64
}

func (s simResult) share() float64 { return s.charged / s.possible }
func (s simResult) pct429() float64 {
	return 100 * float64(s.throttled) / float64(s.admitted+s.throttled)
}

// warmUp is excluded from the utilisation figure, as in the criteria.
const warmUp = 5 * time.Second

func (e *limEnv) simulateCalib(sr simRun) simResult {
	t := e.t
	t.Helper()
	capacity := sr.tpm * sr.burst.Seconds() / 60
	p := &simProvider{rpm: 1e9, tpm: sr.tpm, req: 1e9, tok: capacity, last: limStart, tokCap: capacity}
	rng := simRand(7)
	type call struct {
		r    Reservation
		in   Input
		info HeaderInfo
		ok   bool
		wait time.Duration // a 429's precise wait ("try again in")
	}
	type event struct {
		at     time.Time
		worker int
		send   *call // send this reservation now
		done   *call // this call's response arrives now
	}
	limiters := make([]*Limiter, sr.workers)
	q := simEvents[event]{at: func(e event) time.Time { return e.at }}
	for i := range limiters {
		limiters[i] = e.with(Config{Schedule: 2 * time.Second})
		for c := 0; c < sr.concurrency; c++ {
			q.push(event{at: limStart.Add(time.Duration(i*sr.concurrency+c) * time.Millisecond), worker: i})
		}
	}
	end := limStart.Add(sr.duration)
	measureFrom := limStart.Add(warmUp)
	var res simResult
	settled := 0
	// A 429 pauses every worker until the wait it gives, as the pause gate
	// does: scheduled sends due before then are given back (Refund), as
	// awaitTurn does when a pause is announced.
	var pausedUntil time.Time
	for {
		ev, ok := q.next(end)
		if !ok {
			break
		}
		e.clk.Set(ev.at)
		l := limiters[ev.worker]
		switch {
		case ev.done != nil:
			c := ev.done
			if !c.ok {
				pausedUntil = later(pausedUntil, ev.at.Add(c.wait))
			}
			var err error
			if c.ok {
				err = l.Settle(e.ctx, c.r, c.info, &Usage{InputTokens: c.in.Tokens, OutputTokens: 10, TotalTokens: c.in.Tokens + 10})
			} else {
				err = l.Refund(e.ctx, c.r, c.info)
			}
			if err != nil {
				t.Fatal(err)
			}
			settled++
			if sr.afterResponses != nil {
				sr.afterResponses(settled)
			}
			q.push(event{at: ev.at, worker: ev.worker})
		case ev.send != nil && ev.at.Before(pausedUntil):
			if err := l.Refund(e.ctx, ev.send.r, Unknown); err != nil {
				t.Fatal(err)
			}
			q.push(event{at: pausedUntil, worker: ev.worker})
		case ev.send != nil:
			c := ev.send
			// The request reaches the provider 0-3 ms after it is sent, so
			// near-simultaneous sends may arrive in either order.
			arrive := ev.at.Add(time.Duration(rng.intn(4)) * time.Millisecond)
			if halve := limStart.Add(sr.halveAt); sr.halveAt > 0 && !arrive.Before(halve) && p.tpm == sr.tpm {
				p.refill(halve)
				p.tpm /= 2
				p.tokCap /= 2
				p.tok = min(p.tok, p.tokCap)
			}
			before := p.charged
			cost := sr.charge.charge(c.in, rng.float()) + float64(sr.maxOutput)
			c.ok, c.info = p.admitTokens(arrive, cost)
			if !c.ok {
				c.wait = time.Duration((cost - p.tok) / (p.tpm / 60) * float64(time.Second))
			}
			if !arrive.Before(measureFrom) {
				res.charged += p.charged - before
			}
			if c.ok {
				res.admitted++
			} else {
				res.throttled++
			}
			if sr.halveAt > 0 && p.tpm < sr.tpm {
				if c.ok {
					res.admittedAfter++
				} else {
					res.throttledAfter++
				}
				if !arrive.Before(limStart.Add(sr.halveAt + warmUp)) {
					res.chargedAfter += p.charged - before
				}
			}
			latency := sr.latency/2 + time.Duration(rng.intn(int(sr.latency/time.Millisecond)+1))*time.Millisecond
			if !c.ok {
				latency = 5 * time.Millisecond // a 429 comes back at once
			}
			q.push(event{at: ev.at.Add(latency), worker: ev.worker, done: c})
		case ev.at.Before(pausedUntil):
			q.push(event{at: pausedUntil, worker: ev.worker})
		default:
			in := simInput(&rng, sr.kinds[rng.intn(len(sr.kinds))])
			d, err := l.ReserveRequest(e.ctx, e.acct, in, sr.maxOutput)
			if err != nil {
				t.Fatal(err)
			}
			if !d.OK {
				q.push(event{at: ev.at.Add(max(d.Wait, time.Millisecond)), worker: ev.worker})
				continue
			}
			q.push(event{at: ev.at.Add(d.Wait), worker: ev.worker, send: &call{r: d.Reservation, in: in}})
		}
	}
	res.possible = sr.tpm * (sr.duration - warmUp).Minutes()
	if sr.halveAt > 0 {
		res.possibleAfter = sr.tpm / 2 * (sr.duration - sr.halveAt - warmUp).Minutes()
	}
	return res
}

// TestCalibrationLearnsCharge: whatever a provider charges for a request's
// input, the estimate the limiter reserves converges to it within 20
// responses, from above: a provider charging more than the tokenizer count
// is not under-reserved, one charging less is not left under-used.
func TestCalibrationLearnsCharge(t *testing.T) {
	prose, cjk := 0, 2
	tests := []struct {
		charge simCharge
		kinds  []int
	}{
		{chargeMore, []int{prose}},
		{chargeLess, []int{prose}},
		{chargeChars, []int{prose, cjk}}, // one formula across texts whose token counts differ 3.5x
		{chargeTokens, []int{prose, cjk}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d kinds", tt.charge.name, len(tt.kinds)), func(t *testing.T) {
			e := setupLimiter(t, Config{})
			probes := make([]Input, 0, 8)
			rng := simRand(99)
			for i := 0; i < 8; i++ {
				probes = append(probes, simInput(&rng, tt.kinds[i%len(tt.kinds)]))
			}
			checked := false
			// check wants every probe's estimate in [charge, slack × charge]
			// (plus rounding).
			check := func(when string, slack float64) {
				for _, in := range probes {
					est, err := e.l.Estimate(e.ctx, e.acct, in)
					if err != nil {
						t.Fatal(err)
					}
					charge := tt.charge.charge(in, 0)
					if float64(est) < charge-1 || float64(est) > slack*charge+2 {
						t.Errorf("%s: estimate %d for %+v, provider charges %.0f (want within [charge, %.2f charge])", when, est, in, charge, slack)
					}
				}
			}
			e.simulateCalib(simRun{
				workers: 1, concurrency: 8, tpm: 240000, burst: time.Second, latency: 300 * time.Millisecond,
				maxOutput: 64, kinds: tt.kinds, charge: tt.charge, duration: 30 * time.Second,
				afterResponses: func(n int) {
					if n != 20 {
						return
					}
					checked = true
					check("after 20 responses", 1.15)
				},
			})
			check("at the end", 1.08)
			if !checked {
				t.Fatal("fewer than 20 responses")
			}
			c := e.snap().Calibration
			t.Logf("calibration %+v", c)
			if c.Source != "headers" {
				t.Errorf("source %q, want headers", c.Source)
			}
		})
	}
}

// TestCalibrationSimulation: on a provider model with a 1 s token bucket,
// several workers with requests in flight reach the token limit without
// 429s, whatever the provider's formula and the prompts' mix.
func TestCalibrationSimulation(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation")
	}
	all := []int{0, 1, 2}
	tests := []struct {
		charge      simCharge
		kinds       []int
		workers     int
		burst       time.Duration
		latencyMsec int
		tpm         float64
	}{
		{chargeChars, []int{0}, 3, time.Second, 300, 0},
		{chargeChars, all, 3, time.Second, 300, 0},
		{chargeTokens, all, 3, time.Second, 300, 0},
		{chargeMore, []int{0}, 8, time.Second, 300, 0},
		{chargeLess, []int{0}, 8, time.Second, 300, 0},
		{chargeNoisy, all, 3, time.Second, 300, 0},
		{chargeNoisy, all, 8, time.Minute, 2000, 60000},
		{chargeChars, all, 8, time.Second, 100, 0},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%s/kinds=%d/K=%d/burst=%s/latency=%dms", tt.charge.name, len(tt.kinds), tt.workers, tt.burst, tt.latencyMsec)
		t.Run(name, func(t *testing.T) {
			e := setupLimiter(t, Config{})
			r := e.simulateCalib(simRun{
				workers: tt.workers, concurrency: 8, tpm: cmp.Or(tt.tpm, 240000), burst: tt.burst,
				latency: time.Duration(tt.latencyMsec) * time.Millisecond, maxOutput: 64,
				kinds: tt.kinds, charge: tt.charge, duration: 60 * time.Second,
			})
			t.Logf("%d admitted, %d 429s (%.2f%%), %.3f of the limit after warm-up; calibration %+v",
				r.admitted, r.throttled, r.pct429(), r.share(), e.snap().Calibration)
			if r.pct429() > 0.5 {
				t.Errorf("%.2f%% of requests got a 429, want <= 0.5%%", r.pct429())
			}
			if r.share() < 0.97 {
				t.Errorf("%.3f of the token limit after warm-up, want >= 0.97", r.share())
			}
		})
	}
}

// TestCalibrationLimitHalves: when the provider halves the token limit
// mid-run, the limiter follows within seconds: few 429s, and the new limit
// is used again from 5 s after the change.
func TestCalibrationLimitHalves(t *testing.T) {
	for _, workers := range []int{1, 3, 8} {
		t.Run(fmt.Sprintf("K=%d", workers), func(t *testing.T) {
			e := setupLimiter(t, Config{})
			r := e.simulateCalib(simRun{
				workers: workers, concurrency: 8, tpm: 240000, burst: time.Second, latency: 300 * time.Millisecond,
				maxOutput: 64, kinds: []int{0, 1, 2}, charge: chargeChars, duration: 60 * time.Second, halveAt: 30 * time.Second,
			})
			pct := 100 * float64(r.throttledAfter) / float64(r.admittedAfter+r.throttledAfter)
			share := r.chargedAfter / r.possibleAfter
			t.Logf("run: %d admitted, %d 429s (%.2f%%); after the halving: %d admitted, %d 429s (%.2f%%); %.3f of the new limit from 5 s after it",
				r.admitted, r.throttled, r.pct429(), r.admittedAfter, r.throttledAfter, pct, share)
			// The requests sent after the change and before the first
			// response that shows it find the halved bucket short: no
			// limiter can see that coming. The bound is on the run.
			if r.pct429() > 3 {
				t.Errorf("%.2f%% 429s over the run, want <= 3%%", r.pct429())
			}
			if share < 0.95 {
				t.Errorf("%.3f of the new limit from 5 s after the halving, want >= 0.95", share)
			}
		})
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// TestCalibrationRefusesBadSignals: absurd or missing accounting signals
// leave the estimate where it was, are counted, and never raise a level.
func TestCalibrationRefusesBadSignals(t *testing.T) {
	e := setupLimiter(t, Config{})
	in := Input{Chars: 100, Tokens: 80}
	reserve := func() Reservation {
		t.Helper()
		d, err := e.l.ReserveRequest(e.ctx, e.acct, in, 50)
		if err != nil || !d.OK {
			t.Fatalf("ReserveRequest = %+v, %v", d, err)
		}
		return d.Reservation
	}
	// A first response teaches the limit: 10000 tokens, 5000 left.
	r := reserve()
	if r.Cost.Tokens != 150 || r.EstimatedInput != 100 {
		t.Fatalf("first reservation %+v, want the larger basis 100 + 50", r.Cost)
	}
	if err := e.l.Settle(e.ctx, r, hi(-1, -1, 10000, 5000), &Usage{InputTokens: 80, OutputTokens: 5, TotalTokens: 85}); err != nil {
		t.Fatal(err)
	}
	level := e.snap().Tokens.Available
	approx(t, "tokens after the first response", level, 5000)
	before, err := e.l.Estimate(e.ctx, e.acct, in)
	if err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name  string
		info  HeaderInfo
		usage *Usage
	}{
		{"remaining above the limit", hi(-1, -1, 10000, 1<<40), &Usage{InputTokens: 80, OutputTokens: 5, TotalTokens: 85}},
		{"negative usage", hi(-1, -1, -1, -1), &Usage{InputTokens: -5000, OutputTokens: 5, TotalTokens: -4995}},
		{"no remaining, no usage", hi(-1, -1, -1, -1), nil},
		{"no remaining figure", hi(-1, -1, -1, -1), &Usage{InputTokens: 1 << 40, OutputTokens: 1, TotalTokens: 1<<40 + 1}},
	}
	for _, st := range steps {
		e.clk.Advance(10 * time.Millisecond)
		if err := e.l.Settle(e.ctx, reserve(), st.info, st.usage); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		s := e.snap()
		if s.Tokens.Available > level+1 { // + refill over 10 ms
			t.Fatalf("%s raised the level: %.0f, was %.0f", st.name, s.Tokens.Available, level)
		}
		level = s.Tokens.Available
		if got, err := e.l.Estimate(e.ctx, e.acct, in); err != nil || got != before {
			t.Fatalf("%s moved the estimate: %d, was %d (%v)", st.name, got, before, err)
		}
	}
	c := e.snap().Calibration
	// Refused: remaining above the limit, negative usage, usage above
	// MaxUsageTokens (refused before it reaches the script, so it is not
	// counted as missing a remaining figure either).
	if c.Bad != 3 || c.Missing != 0 || c.Samples != 0 || c.Source != "" {
		t.Fatalf("calibration %+v, want 3 refused signals, no response counted without remaining, no sample", c)
	}
	d := e.snap().Daily
	if d.Tokens < 0 || d.Tokens > MaxUsageTokens {
		t.Fatalf("daily tokens %d: negative or absurd usage reached the counter", d.Tokens)
	}
}

// TestCalibrationFromUsage: a provider that sends no rate-limit headers is
// calibrated from usage.input_tokens until one that does shows up.
func TestCalibrationFromUsage(t *testing.T) {
	e := setupLimiter(t, Config{TPM: 1_000_000})
	in := Input{Chars: 100, Tokens: 80}
	for i := 0; i < 6; i++ {
		e.clk.Advance(100 * time.Millisecond)
		d, err := e.l.ReserveRequest(e.ctx, e.acct, in, 50)
		if err != nil || !d.OK {
			t.Fatalf("ReserveRequest = %+v, %v", d, err)
		}
		// The provider bills 1.25 x the tokenizer count.
		if err := e.l.Settle(e.ctx, d.Reservation, Unknown, &Usage{InputTokens: 100, OutputTokens: 5, TotalTokens: 105}); err != nil {
			t.Fatal(err)
		}
	}
	c := e.snap().Calibration
	if c.Source != "usage" || c.Samples != 6 {
		t.Fatalf("calibration %+v, want 6 usage samples", c)
	}
	// Both bases are flat here (chars 1.0, tokens 1.25): either predicts 100.
	if got, err := e.l.Estimate(e.ctx, e.acct, Input{Chars: 200, Tokens: 160}); err != nil || got != 200 {
		t.Fatalf("estimate = %d, %v; want 200", got, err)
	}
}

// TestCalibrationTooLargeOnlyOnTheLeastCharge: before the provider's formula
// is learned, a request whose larger basis exceeds the bucket but whose
// smaller one fits is not refused as too large (a CJK prompt's tokenizer
// count is several times what a characters/4 limiter charges); once a
// factor is learned, the calibrated estimate decides.
func TestCalibrationTooLargeOnlyOnTheLeastCharge(t *testing.T) {
	e := setupLimiter(t, Config{TPM: 60000, Burst: time.Second}) // a 1000-token bucket
	cjk := Input{Chars: 400, Tokens: 1200}
	d, err := e.l.ReserveRequest(e.ctx, e.acct, cjk, 64)
	if err != nil {
		t.Fatalf("CJK prompt refused before calibration: %v", err)
	}
	if !d.OK || d.Reservation.Cost.Tokens != 1200+64 {
		t.Fatalf("decision %+v, want admitted at the larger basis once the bucket is full", d)
	}
	if _, err := e.l.ReserveRequest(e.ctx, e.acct, Input{Chars: 1200, Tokens: 1300}, 64); !errors.Is(err, ErrCostExceedsLimit) {
		t.Fatalf("a request over the bucket on both bases: %v, want ErrCostExceedsLimit", err)
	}
}

// TestCalibrationRefusesStaleRemaining: a gateway that echoes remaining =
// limit on every answer says every request cost nothing; the calibration
// must refuse that, not learn a factor of 0.
func TestCalibrationRefusesStaleRemaining(t *testing.T) {
	e := setupLimiter(t, Config{})
	in := Input{Chars: 300, Tokens: 250}
	for i := 0; i < 30; i++ {
		e.clk.Advance(100 * time.Millisecond)
		d, err := e.l.ReserveRequest(e.ctx, e.acct, in, 50)
		if err != nil || !d.OK {
			t.Fatalf("ReserveRequest = %+v, %v", d, err)
		}
		if err := e.l.Settle(e.ctx, d.Reservation, hi(-1, -1, 100000, 100000), &Usage{InputTokens: 250, OutputTokens: 5, TotalTokens: 255}); err != nil {
			t.Fatal(err)
		}
	}
	c := e.snap().Calibration
	if c.Basis != "" || c.Bad == 0 {
		t.Fatalf("calibration %+v, want nothing learned and the figures refused", c)
	}
	if got, err := e.l.Estimate(e.ctx, e.acct, in); err != nil || got != 300 {
		t.Fatalf("estimate = %d, %v; want the larger basis, 300", got, err)
	}
}
