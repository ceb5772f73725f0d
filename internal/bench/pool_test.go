package bench

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/promptq/promptq/internal/fakeopenai"
	"github.com/promptq/promptq/internal/pool"
)

func TestParsePoolScenarios(t *testing.T) {
	got, err := ParseScenarios("pool", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("pool: %d scenarios, want 3", len(got))
	}
	for i, s := range got {
		if s.Name != PoolCells[i] || s.Kind != KindPool || s.Workers != PoolWorkers || s.Burst != PoolBurstDefault || s.Cell == nil || *s.Cell != *poolBaseCell() {
			t.Errorf("parsed %+v", s)
		}
	}
	mixed, err := ParseScenarios("pool-tiers, m-base,rpm-b1s-k1", nil)
	if err != nil || len(mixed) != 3 || mixed[0].Kind != KindPool || mixed[1].Cell == nil || mixed[2].Kind != "" {
		t.Fatalf("mixed list: %+v, %v", mixed, err)
	}
	for _, bad := range []string{"pool-3x300", "pool-", "pool-k3"} {
		if _, err := ParseScenarios(bad, nil); err == nil || !strings.Contains(err.Error(), "pool-failover") {
			t.Errorf("%q: err %v, want one naming the pool cells", bad, err)
		}
	}
	for _, set := range []string{"quick", "full", "matrix"} {
		ss, _ := ParseScenarios(set, nil)
		for _, s := range ss {
			if s.Kind == KindPool {
				t.Errorf("%s includes pool cell %s", set, s.Name)
			}
		}
	}
}

func TestPoolPlan(t *testing.T) {
	c := Config{Binary: "x"}.WithDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	plan := func(name string, c Config) poolPlan {
		s, ok, err := parsePoolCell(name)
		if !ok || err != nil {
			t.Fatalf("no pool cell %s: %v", name, err)
		}
		return c.poolPlan(s)
	}
	p := plan(PoolCell2x300, c)
	// Prose prompts under the chars charge cost ~615 tokens: TPM binds.
	if p.cost < 500 || p.cost > 700 {
		t.Fatalf("mean cost %.0f, want about 615", p.cost)
	}
	r := 24_000 / 60 / p.cost
	near(t, "rate", p.rate, r)
	if p.burst != PoolBurstDefault || len(p.accounts) != 2 || p.accounts[0].TPM != 24_000 || p.accounts[1].RPM != 300 {
		t.Fatalf("plan %+v", p)
	}
	// Both bursts, the warm-up and a minute at the combined limit, +10%.
	if want := int(math.Ceil(1.1 * 2 * r * 75)); p.tasks != want {
		t.Errorf("2x300 tasks %d, want %d", p.tasks, want)
	}
	// The largest prose prompt waits longer for its refill than two mean
	// admission intervals (~3s): the cut is that wait.
	_, largest := cellCosts(poolBaseCell(), c.Seed)
	if want := time.Duration(float64(largest) / (float64(c.PoolTPM) / 60) * float64(time.Second)); p.maxCut != want || want < 3*time.Second {
		t.Errorf("maxCut %s, want the largest prompt's refill %s (> two admission intervals)", p.maxCut, want)
	}

	f := plan(PoolCellFailover, c)
	// Two thirds of the batch are a minute of one account's limit.
	if want := int(math.Ceil(1.5 * r * 60)); f.tasks != want || f.failAt != want/3 {
		t.Errorf("failover tasks %d failAt %d, want %d and a third", f.tasks, f.failAt, want)
	}

	tp := plan(PoolCellTiers, c)
	if len(tp.accounts) != 3 || tp.accounts[2] != (poolAccount{Name: "overflow", Tier: 2, RPM: 120, Latency: 2 * time.Second}) {
		t.Fatalf("tiers accounts %+v", tp.accounts)
	}
	// Phase A offers half the primaries' limit over half the duration.
	offered := float64(time.Second) / float64(tp.phaseAEvery)
	if math.Abs(offered-PoolPhaseALoad*2*r) > 0.05 || tp.tasks != tp.phaseA+tp.phaseB {
		t.Errorf("phase A %d tasks every %s (%.2f/s), want %.2f/s", tp.phaseA, tp.phaseAEvery, offered, PoolPhaseALoad*2*r)
	}
	// Phase B is more than the primaries serve in the other half.
	if float64(tp.phaseB) <= 2*r*30 {
		t.Errorf("phase B %d tasks, want beyond the primaries' %.0f", tp.phaseB, 2*r*30)
	}

	// Tasks and Burst replace the sizing; the overflow scales with PoolRPM.
	c2 := Config{Binary: "x", Tasks: 30, Burst: time.Minute, PoolRPM: 600}.WithDefaults()
	if p := plan(PoolCellFailover, c2); p.tasks != 30 || p.failAt != 10 || p.burst != time.Minute {
		t.Errorf("with Tasks 30 and Burst 1m: %+v", p)
	}
	if p := plan(PoolCellTiers, c2); p.phaseA != 10 || p.phaseB != 20 || p.tasks != 30 || p.accounts[2].RPM != 240 {
		t.Errorf("tiers with Tasks 30: %+v", p)
	}
	for _, bad := range []Config{{Binary: "x", PoolRPM: -1}, {Binary: "x", PoolDuration: time.Second}} {
		if err := bad.WithDefaults().Validate(); err == nil || !strings.Contains(err.Error(), "Pool") {
			t.Errorf("%+v: err %v, want a Pool field named", bad, err)
		}
	}
}

// The pool file a pool cell writes is one internal/pool accepts: the
// accounts, their tiers, their base URLs and their keys.
func TestPoolFile(t *testing.T) {
	c := Config{Binary: "x"}.WithDefaults()
	s, _, _ := parsePoolCell(PoolCellTiers)
	p := c.poolPlan(s)
	id := runID(s.Name, ModePromptq)
	env := map[string]string{}
	specs := p.fakeSpecs(id)
	for i, sp := range specs {
		env[keyEnv(i)] = keyOf(sp.Name)
		if err := sp.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	got, err := pool.Parse(p.poolFile(id, "http://127.0.0.1:9"), "pool.yaml", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != id || len(got.Accounts) != 3 {
		t.Fatalf("pool %+v", got)
	}
	for i, a := range got.Accounts {
		if a.Name != specs[i].Name || a.BaseURL != "http://127.0.0.1:9/"+a.Name+"/v1" || a.APIKey != specs[i].APIKey || a.Tier != p.accounts[i].Tier {
			t.Errorf("account %d: %+v, want %s tier %d", i, a, specs[i].Name, p.accounts[i].Tier)
		}
	}
	if specs[2].TPM != fakeopenai.Unlimited || specs[2].RPM != 120 || specs[2].Latency != PoolOverflowLatency {
		t.Errorf("overflow spec %+v", specs[2])
	}
}

// sawtooth is an account's samples every 100ms for n samples: a token
// bucket of tpm refilled continuously and spent by one request of cost
// whenever it holds cost, starting offset samples late. idleFrom > 0 stops
// the requests from that sample on.
func sawtooth(n, tpm, cost, offset, idleFrom int) []fakeopenai.Sample {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	perSample := float64(tpm) / 60 / 10
	out := make([]fakeopenai.Sample, n)
	level, charged, admitted := float64(offset)*perSample, 0, 0
	capacity := float64(10 * tpm / 60)
	var last time.Time
	for i := range n {
		at := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		level = math.Min(capacity, level+perSample)
		if level >= float64(cost)-1e-9 && (idleFrom == 0 || i < idleFrom) {
			level -= float64(cost)
			charged += cost
			admitted++
			last = at
		}
		out[i] = fakeopenai.Sample{At: at, Limits: fakeopenai.Limits{TPM: tpm}, TokensCharged: charged, Admitted: admitted,
			Requests: admitted, TokenLevel: level, LastAdmitAt: last}
	}
	return out
}

// TestAfterLastAdmit: a window that runs to the last admission includes
// it, although the admission falls between two samples and the wait for
// it (5 s) is longer than the cut (3 s).
func TestAfterLastAdmit(t *testing.T) {
	const tpm, cost = 6000, 500
	s := sawtooth(301, tpm, cost, 0, 0)
	for i := range s {
		if !s[i].LastAdmitAt.IsZero() {
			s[i].LastAdmitAt = s[i].LastAdmitAt.Add(-10 * time.Millisecond) // admitted between samples
		}
	}
	accts := [][]fakeopenai.Sample{s[:290]}
	from := s[73].At
	near(t, "to after the last admission", poolUtilisation(accts, from, afterLastAdmit(accts, 3*time.Second), 3*time.Second, true), 1)
	if u := poolUtilisation(accts, from, lastAdmit(accts), 3*time.Second, true); u > 0.95 {
		t.Errorf("a window ending at the admission's own time: %.3f; the test no longer shows the refill it leaves out", u)
	}
}

func TestPoolUtilisation(t *testing.T) {
	const tpm, cost = 6000, 500 // one request every 5s at the limit
	at := func(s []fakeopenai.Sample, i int) time.Time { return s[i].At }
	east, west := sawtooth(301, tpm, cost, 0, 0), sawtooth(301, tpm, cost, 25, 0)
	both := [][]fakeopenai.Sample{east, west}
	from, to := at(east, 73), at(east, 287) // mid-refill at both ends
	t.Run("at the limit, window cut to admissions", func(t *testing.T) {
		near(t, "pool", poolUtilisation(both, from, to, 6*time.Second, true), 1)
		// Without the cut, the refill waiting for the next request counts
		// as unused: the figure depends on where the window ends.
		if u := poolUtilisation(both, from, to, 0, true); u > 0.98 {
			t.Errorf("uncut utilisation %.3f, want the waiting refill counted against it", u)
		}
	})
	t.Run("an idle account counts against the pool", func(t *testing.T) {
		idle := sawtooth(301, tpm, cost, 0, 1)
		near(t, "half", poolUtilisation([][]fakeopenai.Sample{east, idle}, from, to, 6*time.Second, true), 0.5)
	})
	t.Run("an account that stops is not hidden by the cut", func(t *testing.T) {
		// west's last request is at 12.4s of a 7.3-28.7s window: it used
		// about 5s of 21.4s.
		stops := sawtooth(301, tpm, cost, 25, 150)
		u := poolUtilisation([][]fakeopenai.Sample{east, stops}, from, to, 6*time.Second, true)
		if u > 0.65 || u < 0.58 {
			t.Errorf("utilisation %.3f, want about (1+5/21.4)/2 ≈ 0.62", u)
		}
	})
	t.Run("requests bucket unlimited", func(t *testing.T) {
		if u := poolUtilisation(both, from, to, 6*time.Second, false); u != 0 {
			t.Errorf("request utilisation %v with no RPM limit, want 0", u)
		}
	})
}

func TestAdmittedSpan(t *testing.T) {
	s := sawtooth(101, 6000, 500, 0, 0) // admissions at samples 49 and 99 (level reaches 500 then)
	from, to := s[10].At, s[95].At
	// Only one admission in the window: the span would be empty, so the window stays.
	if a, b := admittedSpan(s, from, to, 6*time.Second); !a.Equal(from) || !b.Equal(to) {
		t.Errorf("one admission in the window: span %v-%v, want the window unchanged", a.Sub(s[0].At), b.Sub(s[0].At))
	}
	if a, b := admittedSpan(s, s[10].At, s[100].At, 6*time.Second); !a.Equal(s[49].At) || !b.Equal(s[99].At) {
		t.Errorf("span %v-%v, want 4.9s-9.9s", a.Sub(s[0].At), b.Sub(s[0].At))
	}
	// maxCut bounds the move: 2s is not enough to reach the admission at 4.9s from 1s.
	if a, b := admittedSpan(s, s[10].At, s[100].At, 2*time.Second); !a.Equal(s[10].At) || !b.Equal(s[99].At) {
		t.Errorf("with maxCut 2s: span %v-%v, want 1s-9.9s", a.Sub(s[0].At), b.Sub(s[0].At))
	}
}

// The failover window: the remaining account from the failover to its last
// admission, with its 429s.
func TestPoolWindowAfterFailover(t *testing.T) {
	rest := sawtooth(301, 6000, 500, 12, 0)
	for i := range rest {
		rest[i].Requests = rest[i].Admitted + i/100 // a 429 at 10s and 20s
		rest[i].RateLimited = i / 100
	}
	first := rest[0].At
	failedAt := rest[0].At.Add(7300 * time.Millisecond)
	w := poolWindow([][]fakeopenai.Sample{rest}, first, failedAt, lastAdmit([][]fakeopenai.Sample{rest}), 6*time.Second)
	if w.Binding != "tokens" || w.From != 7.3 || w.To < 25 || w.To > 30 {
		t.Fatalf("window %+v", w)
	}
	near(t, "utilisation", w.Utilisation, 1)
	if w.RateLimited != 2 || w.Requests < 5 || w.Throttled != float64(w.RateLimited)/float64(w.Requests) {
		t.Errorf("429s %d of %d (%v)", w.RateLimited, w.Requests, w.Throttled)
	}
	if lastAdmit(nil) != (time.Time{}) {
		t.Error("lastAdmit of nothing: want zero")
	}
	if w := poolWindow(nil, first, failedAt, failedAt, time.Second); w.Utilisation != 0 {
		t.Errorf("empty window: %+v", w)
	}
}

func TestWritePool(t *testing.T) {
	acct := func(name string, tier, ok int, share float64) PoolAccountResult {
		return PoolAccountResult{poolAccount: poolAccount{Name: name, Tier: tier, RPM: 300, TPM: 24000}, OK: ok, Share: share}
	}
	rep := &Report{Warmup: "5s", Scenarios: []ScenarioResult{
		{Scenario: Scenario{Name: PoolCell2x300, Workers: 3, Kind: KindPool, Burst: PoolBurstDefault, Cell: poolBaseCell()}, Tasks: 107,
			Promptq: RunResult{Mode: ModePromptq, Concurrency: 8, Requests: 108, RateLimited: 1, Throttled: 1.0 / 108},
			Pool: &PoolResult{Accounts: []PoolAccountResult{acct("east", 1, 54, 0.5), acct("west", 1, 53, 0.5)}, MeanTaskCost: 615,
				Window: &PoolWindow{From: 5, To: 65, Binding: "tokens", Utilisation: 0.981, Requests: 80, RateLimited: 0}}},
		{Scenario: Scenario{Name: PoolCellFailover, Workers: 3, Kind: KindPool, Burst: PoolBurstDefault}, Tasks: 59,
			Promptq: RunResult{Mode: ModePromptq, Concurrency: 8},
			Pool: &PoolResult{Accounts: []PoolAccountResult{acct("east", 1, 20, 0.34), acct("west", 1, 39, 0.66)},
				Failover: &Failover{Account: "east", Remaining: "west", RequestsAfterFirstQuotaError: 3, InFlightBound: 24,
					Window: PoolWindow{Binding: "tokens", Utilisation: 0.96}}}},
		{Scenario: Scenario{Name: PoolCellTiers, Workers: 3, Kind: KindPool, Burst: PoolBurstDefault}, Tasks: 120,
			Promptq: RunResult{Mode: ModePromptq, Concurrency: 8},
			Pool: &PoolResult{Accounts: []PoolAccountResult{acct("east", 1, 40, 0.33), acct("west", 1, 40, 0.33), acct("overflow", 2, 40, 0.33)},
				Phases: []TierPhase{{Name: "A", Tasks: 20, Offered: 0.5, OK: []int{10, 10, 0}},
					{Name: "B", Tasks: 100, OK: []int{30, 30, 40}, OverflowShare: 0.4, Primaries: &PoolWindow{Binding: "tokens", Utilisation: 0.99}}}}},
	}}
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"pools — promptq only (the naive baseline has no notion of a pool)",
		"pool-2x300 (K=3×8, burst 10s, 107 tasks of 615 tokens on average; east t1 300/24000, west t1 300/24000; " +
			"prose prompts, charge chars, latency 300ms ±100ms, retry-after seconds)",
		"combined utilisation 5-65s (tokens)", "0.981", "≥ 0.97", "0.00% (0 of 80)", "east 50.00%, west 50.00%",
		"requests to it after its 1st quota 429", "≤ 24 (workers × concurrency)", "west's utilisation", "0.960",
		"phase A: 20 tasks, 50% of the primaries' limit", "phase B: 100 tasks, backlog", "answers 30 / 30 / 40", "40.00%",
		"primaries' utilisation (tokens)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "matrix —") {
		t.Errorf("a pool cell (its Cell set) printed in the matrix table:\n%s", out)
	}
	if strings.Contains(out, "scenario\tmetric") || strings.Contains(out, "naive") && !strings.Contains(out, "naive baseline has no notion") {
		t.Errorf("pool cells printed in the promptq-versus-naive table:\n%s", out)
	}
}

// TestRunPoolTiny runs pool-failover end to end with loose limits, on a
// provider and prompts its name's words change (tokenizer charge, chat
// prompts through the Chat Completions endpoint): a throwaway
// redis-server, a two-account fake, three `promptq worker --pool`
// processes, 30 tasks; the first account runs out of quota after 10 answers.
func TestRunPoolTiny(t *testing.T) {
	bin := buildForRun(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	rep, err := Run(ctx, Config{Binary: bin, Scenarios: PoolCellFailover + "+tokenizer+chat", Concurrency: 4, Tasks: 30,
		PoolRPM: 60_000, PoolTPM: 10_000_000, PoolDuration: 5 * time.Second, Warmup: time.Millisecond, Progress: &progress})
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	s := rep.Scenarios[0]
	r, p := s.Promptq, s.Pool
	if p == nil || p.Failover == nil {
		t.Fatalf("no pool or failover figures: %+v\nprogress:\n%s", p, progress.String())
	}
	if r.Completed != 30 || r.Lost != 0 || r.Archived != 0 || r.Unfinished != 0 {
		t.Errorf("completed %d lost %d archived %d unfinished %d; want 30, 0, 0, 0", r.Completed, r.Lost, r.Archived, r.Unfinished)
	}
	f := p.Failover
	if f.AnsweredBefore < 10 || f.RequestsAfterFirstQuotaError > f.InFlightBound || f.InFlightBound != 3*4 {
		t.Errorf("failover %+v", f)
	}
	if p.Unattributed != 0 || p.Accounts[0].Served+p.Accounts[1].Served != 30 || p.Accounts[1].OK == 0 {
		t.Errorf("accounts %+v, %d results without an account", p.Accounts, p.Unattributed)
	}
	if p.RetriesSpent != 0 {
		t.Errorf("%d tasks spent a retry on the failover", p.RetriesSpent)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil || !strings.Contains(table.String(), "pool-failover+tokenizer+chat (K=3×4") ||
		!strings.Contains(table.String(), "chat prompts, charge tokenizer") {
		t.Fatalf("table (err %v):\n%s", err, table.String())
	}
	t.Logf("\n%s", table.String())
}
