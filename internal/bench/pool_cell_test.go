package bench

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/promptq/promptq/internal/corpus"
	"github.com/promptq/promptq/internal/fakeopenai"
	"github.com/promptq/promptq/tasks"
)

func TestParsePoolCellWords(t *testing.T) {
	tests := []struct {
		name   string
		base   string
		change func(s *Scenario)
	}{
		{"pool-2x300", PoolCell2x300, func(*Scenario) {}},
		{"pool-2x300+tokenizer+code", PoolCell2x300, func(s *Scenario) {
			s.Cell.Charge, s.Cell.Prompts = fakeopenai.ChargeTokenizer, corpus.Code
		}},
		{"pool-failover+cjk+noisytok", PoolCellFailover, func(s *Scenario) {
			s.Cell.Prompts, s.Cell.Charge, s.Cell.ChargeNoise = corpus.CJK, fakeopenai.ChargeTokenizer, 0.1
		}},
		{"pool-2x300+chat+headers+lat2s", PoolCell2x300, func(s *Scenario) {
			s.Cell.Prompts, s.Cell.RetryAfter = corpus.Chat, fakeopenai.RetryAfterBoth
			s.Cell.Latency, s.Cell.Jitter = 2*time.Second, 500*time.Millisecond
		}},
		{"pool-tiers+tok120+b60s", PoolCellTiers, func(s *Scenario) {
			s.Cell.Charge, s.Cell.ChargeScale, s.Burst = fakeopenai.ChargeTokenizer, 1.2, time.Minute
		}},
		{"pool-2x300+b1s", PoolCell2x300, func(s *Scenario) { s.Burst = time.Second }},
		// A later word beats an earlier one.
		{"pool-2x300+tok80+chars+chat+prose+lat100ms+lat300ms+headers+body", PoolCell2x300, func(*Scenario) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseScenarios(tt.name, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := Scenario{Name: tt.name, Workers: PoolWorkers, Bound: BoundTPM, Burst: PoolBurstDefault, Kind: KindPool, Cell: poolBaseCell()}
			tt.change(&want)
			g := got[0]
			if g.base() != tt.base || g.Name != want.Name || g.Kind != KindPool || g.Workers != want.Workers ||
				g.Bound != want.Bound || g.Burst != want.Burst || *g.Cell != *want.Cell {
				t.Fatalf("parsed %+v cell %+v base %s\nwant   %+v cell %+v base %s", g, *g.Cell, g.base(), want, *want.Cell, tt.base)
			}
		})
	}
	// Words a pool cell cannot take: one error naming the cell, the word
	// and the words it can take.
	for _, tt := range []struct{ name, word string }{
		{"pool-2x300+halve", "halve"}, {"pool-2x300+rpm", "rpm"}, {"pool-failover+tpm", "tpm"},
		{"pool-tiers+code+k8", "k8"}, {"pool-2x300+base", "base"}, {"pool-2x300+", ""}, {"pool-2x300+cjk++code", ""},
	} {
		_, err := ParseScenarios(tt.name, nil)
		if err == nil || strings.Count(err.Error(), "bench:") != 1 ||
			!strings.Contains(err.Error(), `pool cell "`+tt.name+`": "`+tt.word+`" is not a pool word`) ||
			!strings.Contains(err.Error(), "tokenizer, noisy") || !strings.Contains(err.Error(), "b1s, b60s") {
			t.Errorf("%q: err %v, want one naming the word %q and the pool words", tt.name, err, tt.word)
		}
	}
	// An unknown base is no pool cell: the scenario error names the cells.
	if _, err := ParseScenarios("pool-3x300+code", nil); err == nil || !strings.Contains(err.Error(), "pool-failover") {
		t.Errorf("pool-3x300+code: err %v, want the scenario error", err)
	}
}

// A pool cell's plan is sized on its own prompts under its own provider:
// the mean charge, the rate one account allows at it, the largest prompt's
// refill (maxCut) and the payloads.
func TestPoolPlanUsesCellCost(t *testing.T) {
	c := Config{Binary: "x"}.WithDefaults()
	base := planOf(t, c, PoolCell2x300)
	for _, name := range []string{"pool-2x300+tokenizer+code", "pool-2x300+cjk+tokenizer", "pool-2x300+chat+noisy", "pool-failover+tokenizer+chat"} {
		t.Run(name, func(t *testing.T) {
			s, _, _ := parsePoolCell(name)
			p := c.poolPlan(s)
			mean, largest := cellCosts(s.Cell, c.Seed)
			if p.cost != mean || p.largest != largest || p.prompts != s.Cell.Prompts {
				t.Fatalf("plan cost %.1f largest %d prompts %s, want the cell's %.1f, %d, %s", p.cost, p.largest, p.prompts, mean, largest, s.Cell.Prompts)
			}
			if math.Abs(p.cost-base.cost) < 1 {
				t.Errorf("cost %.1f is the base cell's %.1f", p.cost, base.cost)
			}
			r := math.Min(float64(c.PoolRPM)/60, float64(c.PoolTPM)/60/mean)
			near(t, "rate", p.rate, r)
			refill := time.Duration(float64(largest) / (float64(c.PoolTPM) / 60) * float64(time.Second))
			if want := max(time.Duration(2/r*float64(time.Second)), refill); p.maxCut != want {
				t.Errorf("maxCut %s, want %s", p.maxCut, want)
			}
			if s.base() == PoolCell2x300 {
				if want := int(math.Ceil(1.1 * 2 * r * 75)); p.tasks != want {
					t.Errorf("tasks %d, want %d", p.tasks, want)
				}
			}
			for i, pl := range p.payloads("run", "", 0, 3, c.Seed) {
				if want := CellPayload("run", s.Cell.Prompts, c.Seed, i); pl.Input.Text != want.Input.Text || len(pl.Input.Messages) != len(want.Input.Messages) {
					t.Errorf("payload %d is not prompt %d of %s", i, i, s.Cell.Prompts)
				}
				if (s.Cell.Prompts == corpus.Chat) != (pl.Endpoint == tasks.EndpointChat) {
					t.Errorf("payload %d endpoint %q for %s prompts", i, pl.Endpoint, s.Cell.Prompts)
				}
			}
		})
	}
}

// The pool-family set parses, fits its bursts, keeps the provider (not the
// workers) the limit and plans under 8 minutes at the defaults.
func TestPoolFamily(t *testing.T) {
	c := Config{Binary: "x"}.WithDefaults()
	ss, err := ParseScenarios(PoolFamilySet, nil)
	if err != nil || len(ss) != len(PoolFamily) {
		t.Fatalf("pool-family: %d scenarios, %v", len(ss), err)
	}
	var planned time.Duration
	for _, s := range ss {
		p := c.poolPlan(s)
		if s.Kind != KindPool || *s.Cell == *poolBaseCell() {
			t.Errorf("%s: %+v cell %+v, want a pool cell off the base provider", s.Name, s, *s.Cell)
		}
		if err := p.fits(s); err != nil {
			t.Error(err)
		}
		// Both accounts' admissions in flight at the slowest answer, with
		// room to spare.
		if need := 2 * p.rate * (s.Cell.Latency + s.Cell.Jitter).Seconds(); 2*need > float64(s.Workers*c.Concurrency) {
			t.Errorf("%s: %.1f requests in flight at the limit, more than half of %d×%d", s.Name, need, s.Workers, c.Concurrency)
		}
		planned += p.burst + p.length
	}
	if planned > 7*time.Minute {
		t.Errorf("pool-family plans %s at its limits, want room under 8 minutes", planned)
	}
}

// A burst that holds less than a cell's largest prompt is refused before
// anything starts.
func TestPoolBurstTooSmall(t *testing.T) {
	c := Config{Binary: "x"}.WithDefaults()
	s, _, _ := parsePoolCell("pool-2x300+b1s")
	err := c.poolPlan(s).fits(s)
	if err == nil || !strings.Contains(err.Error(), "pool-2x300+b1s: a burst of 1s at 24000 TPM holds 400 tokens") {
		t.Fatalf("err %v", err)
	}
	if _, err := Run(context.Background(), Config{Binary: "x", Scenarios: "pool-2x300+b1s"}); err == nil || !strings.Contains(err.Error(), "largest prompt") {
		t.Fatalf("Run: err %v, want the burst refused", err)
	}
}

func planOf(t *testing.T, c Config, name string) poolPlan {
	t.Helper()
	s, ok, err := parsePoolCell(name)
	if !ok || err != nil {
		t.Fatalf("%s: ok %v err %v", name, ok, err)
	}
	return c.poolPlan(s)
}
