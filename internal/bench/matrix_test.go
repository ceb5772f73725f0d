package bench

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/promptq/promptq/internal/corpus"
	"github.com/promptq/promptq/internal/fakeopenai"
	"github.com/promptq/promptq/tasks"
)

func TestParseCell(t *testing.T) {
	base := Scenario{Name: "m-base", Workers: 3, Bound: BoundTPM, Burst: time.Second, Cell: &Cell{
		Charge: fakeopenai.ChargeChars, Prompts: corpus.Prose, RetryAfter: fakeopenai.RetryAfterSeconds,
		Latency: 300 * time.Millisecond, Jitter: 100 * time.Millisecond}}
	tests := []struct {
		name   string
		change func(s *Scenario)
	}{
		{"m-base", func(*Scenario) {}},
		{"m-tokenizer", func(s *Scenario) { s.Cell.Charge = fakeopenai.ChargeTokenizer }},
		{"m-noisy", func(s *Scenario) { s.Cell.ChargeNoise = 0.1 }},
		{"m-tok120", func(s *Scenario) { s.Cell.Charge, s.Cell.ChargeScale = fakeopenai.ChargeTokenizer, 1.2 }},
		{"m-headers", func(s *Scenario) { s.Cell.RetryAfter = fakeopenai.RetryAfterBoth }},
		{"m-rpm", func(s *Scenario) { s.Bound = BoundRPM }},
		{"m-lat2s", func(s *Scenario) { s.Cell.Latency, s.Cell.Jitter = 2*time.Second, 500*time.Millisecond }},
		{"m-halve", func(s *Scenario) { s.Cell.Halve = true }},
		{"m-chat+b60s", func(s *Scenario) { s.Cell.Prompts, s.Burst = corpus.Chat, time.Minute }},
		{"m-k8+chat+noisytok+lat100ms", func(s *Scenario) {
			s.Workers, s.Cell.Prompts, s.Cell.Charge, s.Cell.ChargeNoise = 8, corpus.Chat, fakeopenai.ChargeTokenizer, 0.1
			s.Cell.Latency, s.Cell.Jitter = 100*time.Millisecond, 30*time.Millisecond
		}},
		// A later word beats an earlier one.
		{"m-tok80+chars+k1", func(s *Scenario) { s.Workers = 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseScenarios(tt.name, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := base
			c := *base.Cell
			want.Cell, want.Name = &c, tt.name
			tt.change(&want)
			if g := got[0]; g.Name != want.Name || g.Workers != want.Workers || g.Bound != want.Bound || g.Burst != want.Burst || *g.Cell != *want.Cell {
				t.Fatalf("parsed %+v cell %+v\nwant   %+v cell %+v", g, *g.Cell, want, *want.Cell)
			}
		})
	}
	for _, bad := range []string{"m-", "m-cjk+", "m-words", "m-k0", "m-k65", "m-kx", "m-base+cjk"} {
		if _, err := ParseScenarios(bad, nil); err == nil || !strings.Contains(err.Error(), "matrix cell") {
			t.Errorf("%q: err %v, want a matrix cell error", bad, err)
		}
	}
}

// The matrix set covers every value of every axis at least once.
func TestMatrixCoversEveryAxis(t *testing.T) {
	cells, err := ParseScenarios("matrix", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cells) != len(MatrixCells) {
		t.Fatalf("%d cells, want %d", len(cells), len(MatrixCells))
	}
	seen := map[string]bool{}
	for _, s := range cells {
		c := s.Cell
		seen[string(c.Charge)+"x"+f2(cmpF(c.ChargeScale, 1))+"~"+f2(c.ChargeNoise)] = true
		seen[string(c.Prompts)] = true
		seen["wait:"+string(c.RetryAfter)] = true
		seen["burst:"+s.Burst.String()] = true
		seen["bound:"+string(s.Bound)] = true
		seen["latency:"+c.Latency.String()] = true
		seen["k"+f0(float64(s.Workers))] = true
		if c.Halve {
			seen["halve"] = true
		}
	}
	for _, want := range []string{
		"charsx1.00~0.00", "tokenizerx1.00~0.00", "charsx1.00~0.10", "tokenizerx1.20~0.00", "tokenizerx0.80~0.00",
		"prose", "code", "cjk", "chat", "wait:seconds", "wait:both", "burst:1s", "burst:1m0s", "bound:tpm", "bound:rpm",
		"latency:100ms", "latency:300ms", "latency:2s", "halve", "k1", "k3", "k8",
	} {
		if !seen[want] {
			t.Errorf("no matrix cell has %s", want)
		}
	}
}

func cmpF(v, def float64) float64 {
	if v == 0 {
		return def
	}
	return v
}

// samples builds n fake-accounting samples 100ms apart, each from f(i):
// cumulative tokens charged, token level and TPM.
func samples(n int, f func(i int) (charged int, level float64, tpm int)) []fakeopenai.Sample {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	out := make([]fakeopenai.Sample, n)
	for i := range n {
		c, lvl, tpm := f(i)
		out[i] = fakeopenai.Sample{At: t0.Add(time.Duration(i) * 100 * time.Millisecond), Limits: fakeopenai.Limits{TPM: tpm},
			TokensCharged: c, TokenLevel: lvl, LastAdmitAt: t0.Add(time.Duration(i) * 100 * time.Millisecond)}
	}
	return out
}

func near(t *testing.T, name string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 0.005 {
		t.Errorf("%s = %.4f, want %.4f", name, got, want)
	}
}

func TestUtilisationWindow(t *testing.T) {
	// 6000 TPM = 100 tokens/s = 10 per 100ms sample; 101 samples = 10s.
	const tpm = 6000
	at := func(s []fakeopenai.Sample, i int) time.Time { return s[i].At }
	t.Run("at the limit", func(t *testing.T) {
		s := samples(101, func(i int) (int, float64, int) { return 10 * i, 5, tpm })
		near(t, "utilisation", utilisation(s, at(s, 0), at(s, 100), true), 1)
		near(t, "from the middle", utilisation(s, at(s, 50), at(s, 100), true), 1)
	})
	t.Run("half the limit", func(t *testing.T) {
		s := samples(101, func(i int) (int, float64, int) { return 5 * i, 100, tpm })
		near(t, "utilisation", utilisation(s, at(s, 0), at(s, 100), true), 0.5)
	})
	t.Run("burst stored before the window does not count", func(t *testing.T) {
		// A 60s bucket drained from 1000 to 0 over the window while 2000 was
		// charged: only the 1000 of refill is the limit's work.
		s := samples(101, func(i int) (int, float64, int) { return 20 * i, 1000 - 10*float64(i), tpm })
		near(t, "utilisation", utilisation(s, at(s, 0), at(s, 100), true), 1)
	})
	t.Run("refill kept for later is not credited", func(t *testing.T) {
		// Nothing sent, the bucket refilling: no use of the limit.
		s := samples(101, func(i int) (int, float64, int) { return 0, 10 * float64(i), tpm })
		near(t, "utilisation", utilisation(s, at(s, 0), at(s, 100), true), 0)
	})
	t.Run("limit halves mid-window", func(t *testing.T) {
		// At the limit before (10/sample) and after (5/sample); the level is
		// cut from 100 to 50 at the halving, which is not work.
		s := samples(101, func(i int) (int, float64, int) {
			if i <= 50 {
				return 10 * i, 100, tpm
			}
			return 500 + 5*(i-50), 50, tpm / 2
		})
		near(t, "utilisation", utilisation(s, at(s, 0), at(s, 100), true), 1)
		near(t, "after", utilisation(s, at(s, 51), at(s, 100), true), 1)
		// Without cutting at the change, the level's fall would count as drained burst.
		if u := utilisation(s, at(s, 0), at(s, 100), true); u < 0.99 {
			t.Errorf("utilisation %.3f across the halving", u)
		}
	})
	t.Run("empty", func(t *testing.T) {
		if u := utilisation(nil, time.Now(), time.Now(), true); u != 0 {
			t.Errorf("no samples: %v", u)
		}
	})
}

func TestMeasureWindowHalvingAndRecovery(t *testing.T) {
	// 20s of samples; 100 tokens/s until 10s, then the limit halves to 50
	// tokens/s. The client sends nothing for 1.5s after the halving, then
	// runs at the new limit. 20% of requests after the halving get a 429.
	s := samples(201, func(i int) (int, float64, int) {
		switch {
		case i <= 100:
			return 10 * i, 0, 6000
		case i <= 115:
			return 1000, 0, 3000
		default:
			return 1000 + 5*(i-115), 0, 3000
		}
	})
	for i := range s {
		s[i].Requests, s[i].RateLimited = 10*i, 0
		if i > 100 {
			s[i].RateLimited = 2 * (i - 100)
		}
	}
	s[len(s)-1].LastAdmitAt = s[190].At // the backlog ran out at 19s
	first, halved := s[0].At, s[100].At.Add(50*time.Millisecond)
	w := measureWindow(s, first, time.Time{}, halved, 5*time.Second, true)
	if w.Binding != "tokens" || w.From != 5 || w.To != 19 {
		t.Fatalf("window %+v, want tokens from 5s to 19s", w)
	}
	near(t, "throttled after halving", w.ThrottledAfterHalving, 0.2)
	near(t, "throttled in window", w.Throttled, float64(2*(190-100))/float64(10*(190-50)))
	// 1.5s idle then at the limit: the first 2s window at >= 0.95 starts at
	// the sample of 11.4s (one idle step in 20), 1.35s after the halving.
	near(t, "recovery", w.Recovery, 1.35)
	// Idle 1.5s of the 8.95s after the halving.
	if w.UtilisationAfterHalving < 0.8 || w.UtilisationAfterHalving > 0.85 {
		t.Errorf("utilisation after halving %.3f, want ~(9-1.5)/9", w.UtilisationAfterHalving)
	}
	// The end of the cell duration cuts the window before the last admission.
	if w := measureWindow(s, first, s[150].At, time.Time{}, 5*time.Second, true); w.To != 15 || w.HalvedAt != 0 {
		t.Errorf("window to %v, halved %v; want to 15s, no halving", w.To, w.HalvedAt)
	}
	// A client that never gets back to the limit.
	slow := samples(201, func(i int) (int, float64, int) { return 2 * i, 0, 3000 })
	if w := measureWindow(slow, first, time.Time{}, halved, 5*time.Second, true); w.Recovery != -1 {
		t.Errorf("recovery %v, want -1 (never)", w.Recovery)
	}
}

func TestCellLimits(t *testing.T) {
	c := Config{Binary: "x"}.WithDefaults()
	parse := func(name string) Scenario {
		s, err := ParseScenarios(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s[0]
	}
	base, rpm, halve, b60 := parse("m-base"), parse("m-rpm"), parse("m-halve"), parse("m-b60s")
	lb := c.limitsFor(base)
	costBase := meanCellCost(base.Cell, c.Seed)
	if lb.tpm != int(math.Round(8*60*costBase)) || lb.rpm != 4*8*60 || lb.rate != 8 {
		t.Errorf("base limits %+v, mean cost %.1f", lb, costBase)
	}
	// 1.1 × (8 burst tasks + 8/s × (5s warm-up + 15s)).
	if lb.tasks != int(math.Ceil(1.1*(8+8*20))) {
		t.Errorf("base tasks %d", lb.tasks)
	}
	// The same CJK prompts cost over twice as much under the tokenizer as
	// under characters/4, and prose less.
	if tok, chars := meanCellCost(parse("m-cjk+tokenizer").Cell, c.Seed), meanCellCost(parse("m-cjk").Cell, c.Seed); tok < 2*chars {
		t.Errorf("mean cost of CJK: tokenizer %.0f, chars %.0f", tok, chars)
	}
	if tok := meanCellCost(parse("m-tokenizer").Cell, c.Seed); tok >= costBase {
		t.Errorf("mean cost of prose: tokenizer %.0f, chars %.0f", tok, costBase)
	}
	if l := c.limitsFor(rpm); l.rpm != 480 || l.tpm != int(math.Round(4*480*costBase)) {
		t.Errorf("rpm-bound limits %+v", l)
	}
	if l := c.limitsFor(halve); l.tasks >= lb.tasks {
		t.Errorf("halving cell has %d tasks, want fewer than the base's %d", l.tasks, lb.tasks)
	}
	if l := c.limitsFor(b60); l.tasks != int(math.Ceil(1.1*(8*60+8*20))) {
		t.Errorf("60s burst tasks %d", l.tasks)
	}
	// The workers can keep 3x the binding rate in flight at the slowest latency.
	if got := c.cellConcurrency(parse("m-lat2s")); got != 20 {
		t.Errorf("lat2s concurrency %d, want ceil(3 × 8/s × 2.5s / 3) = 20", got)
	}
	if got := c.cellConcurrency(base); got != c.Concurrency {
		t.Errorf("base concurrency %d, want the configured %d", got, c.Concurrency)
	}
}

// Every matrix cell's run ID is a valid queue name.
func TestRunIDIsAQueueName(t *testing.T) {
	for _, name := range MatrixCells {
		p := Payload(runID(name, ModePromptq), 0)
		p.Queue = runID(name, ModeNaive)
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestCellPayload(t *testing.T) {
	for _, k := range corpus.Kinds() {
		p := CellPayload("run", k, 1, 7)
		if err := p.Validate(); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if q := CellPayload("run", k, 1, 7); !slices.Equal(q.Input.Messages, p.Input.Messages) || q.Input.Text != p.Input.Text {
			t.Fatalf("%s: not the same prompt twice", k)
		}
		if k == corpus.Chat {
			if p.Endpoint != tasks.EndpointChat || len(p.Input.Messages) < 6 || p.Input.Text != "" {
				t.Errorf("chat payload endpoint %q, %d messages", p.Endpoint, len(p.Input.Messages))
			}
		} else if p.Input.Text == "" || p.Instructions == "" || p.MaxOutputTokens != MaxOutputTokens || p.ID != "run-000007" {
			t.Errorf("%s payload %+v", k, p)
		}
	}
}
