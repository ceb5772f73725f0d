package bench

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/promptq/promptq/quota"
)

func TestSpecsFor(t *testing.T) {
	c := Config{Binary: "x"}.WithDefaults()
	tests := []struct {
		name   string
		labels []string
		modes  []string
	}{
		{"rpm-b1s-k3", []string{ModePromptq, ModeNaive}, []string{ModePromptq, ModeNaive}},
		{"adaptive-k3", []string{ModeAdaptive, ModeNaive, ModePromptq}, []string{ModePromptq, ModeNaive, ModePromptq}},
		{"slowdown-k3", []string{ModePromptq, ModeNaive}, []string{ModePromptq, ModeNaive}},
		{"tenants-k3", []string{ModeBudgets, ModeNoBudgets}, []string{ModePromptq, ModePromptq}},
		{"fair-k3", []string{ModeFair, ModeNoFair}, []string{ModePromptq, ModePromptq}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseScenarios(tt.name, nil)
			if err != nil {
				t.Fatal(err)
			}
			specs := c.specsFor(s[0], c.limitsFor(s[0]))
			var labels, modes []string
			for _, sp := range specs {
				labels, modes = append(labels, sp.label), append(modes, sp.mode)
			}
			if !slices.Equal(labels, tt.labels) || !slices.Equal(modes, tt.modes) {
				t.Fatalf("sides %v (modes %v), want %v (%v)", labels, modes, tt.labels, tt.modes)
			}
			switch s[0].Kind {
			case KindAdaptive:
				if !slices.Contains(specs[0].args, "--adaptive-concurrency") || len(specs[2].args) != 0 || !specs[0].adaptive {
					t.Errorf("adaptive args %v, plain args %v", specs[0].args, specs[2].args)
				}
			case KindSlowDown:
				for _, sp := range specs {
					if sp.slowDown != SlowDownDefault || !slices.Equal(sp.args, []string{"--slowdown-interval", "5s"}) {
						t.Errorf("%s: slowDown %v args %v", sp.label, sp.slowDown, sp.args)
					}
				}
			case KindTenants:
				if got := specs[0].budgets[TenantA]; got != (quota.TenantBudget{RPM: 600}) || len(specs[0].budgets) != 1 {
					t.Errorf("budgets %+v, want A capped at 600 rpm only", specs[0].budgets)
				}
				if len(specs[1].budgets) != 0 || !specs[0].tenants || !specs[1].tenants {
					t.Errorf("baseline budgets %+v", specs[1].budgets)
				}
			case KindFair:
				if len(specs[0].args) != 0 || !slices.Equal(specs[1].args, []string{"--fair-share=false"}) ||
					!specs[0].mixed || !specs[1].mixed || len(specs[0].budgets)+len(specs[1].budgets) != 0 {
					t.Errorf("fair sides %+v", specs)
				}
			}
		})
	}
}

func TestTenantPayloads(t *testing.T) {
	ps := runSpec{tenants: true}.payloads("run", 220)
	count := map[string]int{}
	for i, p := range ps {
		count[p.Tenant]++
		if tenantOf("run", p.ID) != p.Tenant {
			t.Fatalf("task %d: ID %q, tenant %q", i, p.ID, p.Tenant)
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("task %d: %v", i, err)
		}
		// A's backlog comes first: the worst case for B.
		if want := TenantA; i >= 200 {
			want = TenantB
			if p.Tenant != want {
				t.Fatalf("task %d is %s, want %s", i, p.Tenant, want)
			}
		} else if p.Tenant != want {
			t.Fatalf("task %d is %s, want %s", i, p.Tenant, want)
		}
	}
	if count[TenantA] != 200 || count[TenantB] != 20 {
		t.Fatalf("tenants %v, want 200 A and 20 B", count)
	}
	// Interleaved: every 11th task is B's, as two producers pushing at once.
	mixed := runSpec{tenants: true, mixed: true}.payloads("run", 220)
	count = map[string]int{}
	for i, p := range mixed {
		count[p.Tenant]++
		if want := (i+1)%11 == 0; (p.Tenant == TenantB) != want || tenantOf("run", p.ID) != p.Tenant {
			t.Fatalf("mixed task %d: %s (%s)", i, p.Tenant, p.ID)
		}
	}
	if count[TenantA] != 200 || count[TenantB] != 20 || mixed[10].ID != "run-B-000000" || mixed[11].ID != "run-A-000010" {
		t.Fatalf("mixed tenants %v, ids %s %s", count, mixed[10].ID, mixed[11].ID)
	}
	plain := runSpec{}.payloads("run", 3)
	if len(plain) != 3 || plain[0].Tenant != "" || plain[2].ID != "run-000002" {
		t.Fatalf("plain payloads %+v", plain)
	}
}

func TestTenantResults(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return start.Add(time.Duration(s * float64(time.Second))) }
	finished := map[string]time.Time{
		"run-A-000000": at(1), "run-A-000001": at(2), "run-A-000002": at(3), "run-A-000003": at(10),
		"run-B-000000": at(2), "run-B-000001": at(4),
	}
	got := tenantResults("run", start, finished, map[string]quota.TenantBudget{TenantA: {RPM: 600}})
	// B finished first, at 4s; until then A completed 3 and B 2.
	if got.BothUntil != 4 || len(got.Tenants) != 2 {
		t.Fatalf("got %+v", got)
	}
	a, b := got.Tenants[0], got.Tenants[1]
	if a.Name != TenantA || a.Completed != 4 || a.BudgetRPM != 600 || a.ShareWhileBoth != 0.6 || a.RateWhileBoth != 0.75 || a.FirstDone != 1 || a.Done != 10 {
		t.Errorf("A = %+v", a)
	}
	if b.Name != TenantB || b.Completed != 2 || b.BudgetRPM != 0 || b.ShareWhileBoth != 0.4 || b.Done != 4 || b.FirstDone != 2 {
		t.Errorf("B = %+v", b)
	}
}

func TestSlowDownTrace(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &slowWatch{length: 2 * time.Second, injected: start.Add(10 * time.Second)}
	// 20 answers/s for 10s, none for 2s, 10/s for 5s, 20/s for 3s.
	ok := 0
	for ms := 0; ms <= 20_000; ms += 100 {
		sec := (ms - 100) / 1000 // the second the last 100ms fell in
		switch {
		case ms == 0:
		case sec < 10 || sec >= 17:
			ok += 2
		case sec >= 12:
			ok++
		}
		s.samples = append(s.samples, okSample{start.Add(time.Duration(ms) * time.Millisecond), ok})
	}
	tr := s.trace(start)
	if tr.InjectedAt != 10 || tr.Length != 2 || tr.RateBefore != 20 || tr.RateAfter != 6 || tr.RateAfterEnd != 10 {
		t.Fatalf("trace %+v", tr)
	}
	want := []int{0, 0, 10, 10, 10, 10, 10, 20, 20, 20, 0}
	if !slices.Equal(tr.PerSecond, want) {
		t.Fatalf("per second %v, want %v", tr.PerSecond, want)
	}
	if (&slowWatch{}).trace(start) != nil {
		t.Fatal("no injection: want no trace")
	}
}

func TestWriteDetails(t *testing.T) {
	sr := ScenarioResult{Scenario: Scenario{Name: "adaptive-k3", Workers: 3, Bound: BoundRPM, Burst: time.Second, Kind: KindAdaptive},
		Promptq: RunResult{Mode: ModeAdaptive, MaxInFlight: 6, AdaptiveLimit: 7},
		Plain:   &RunResult{Mode: ModePromptq, MaxInFlight: 24},
		Naive:   RunResult{Mode: ModeNaive, MaxInFlight: 24}}
	var b bytes.Buffer
	if err := (&Report{Scenarios: []ScenarioResult{sr}}).WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"adaptive-k3, side by side:", "final adaptive limit", "plain promptq below"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	_, details, _ := strings.Cut(out, "side by side:\n")
	head, _, _ := strings.Cut(details, "\n")
	if got := strings.Fields(head); !slices.Equal(got, []string{"metric", ModeAdaptive, ModePromptq, ModeNaive}) {
		t.Errorf("details columns %v, want metric, adaptive, promptq, naive:\n%s", got, out)
	}
}
