package bench

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/promptq/promptq/internal/fakeopenai"
	"github.com/promptq/promptq/quota"
	"github.com/promptq/promptq/tasks"
)

// Kinds of feature scenario (Scenario.Kind). Each is RPM-bound with a 1s burst.
const (
	// KindAdaptive runs the load three ways: promptq with
	// --adaptive-concurrency (the promptq side), naive, and plain promptq
	// (ScenarioResult.Plain).
	KindAdaptive = "adaptive"
	// KindSlowDown switches the provider to 503 slow_down for
	// SlowDownDefault once 30% of the tasks are answered, on both sides, and
	// traces the answer rate afterwards. Workers run with
	// --slowdown-interval SlowDownIntervalDefault so the ramp back fits the run.
	KindSlowDown = "slowdown"
	// KindTenants enqueues tenant A's backlog (10/11 of the tasks) ahead of
	// tenant B's (1/11). The promptq side caps A at TenantCapShare of the
	// account RPM with a tenant budget; the other side is promptq without
	// budgets.
	KindTenants = "tenants"
	// KindFair enqueues two tenants' backlogs at 10:1 interleaved in one
	// queue, as two producers pushing at once, without budgets and with
	// equal weights. The promptq side shares short headroom fairly (the
	// default); the other side is promptq with --fair-share=false.
	KindFair = "fair"
)

// Side labels of the feature scenarios (RunResult.Mode).
const (
	ModeAdaptive  = "adaptive"   // promptq with --adaptive-concurrency
	ModeBudgets   = "budgets"    // promptq with tenant A capped
	ModeNoBudgets = "no-budgets" // promptq without tenant budgets
	ModeFair      = "fair"       // promptq with weighted fair sharing (default)
	ModeNoFair    = "no-fair"    // promptq with --fair-share=false
)

// Feature scenario settings.
const (
	// SlowDownDefault is how long the provider answers 503 slow_down.
	SlowDownDefault = 2 * time.Second
	// SlowDownIntervalDefault is the workers' --slowdown-interval in the
	// slowdown scenario (the product default, 15m, would outlast the run).
	SlowDownIntervalDefault = 5 * time.Second
	// TenantCapShare is tenant A's budget as a share of the account RPM.
	TenantCapShare = 0.5
	// TenantBacklogRatio is how many tasks of A there are per task of B.
	TenantBacklogRatio = 10
)

// Tenant names of the tenants scenario.
const (
	TenantA = "A"
	TenantB = "B"
)

// runSpec says how to run one side of a scenario.
type runSpec struct {
	mode     string   // ModePromptq (quota control on) or ModeNaive (off)
	label    string   // RunResult.Mode; part of the queue and account name
	args     []string // extra worker flags
	adaptive bool     // read the final adaptive limit after the run
	slowDown time.Duration
	tenants  bool                          // enqueue the two-tenant load
	mixed    bool                          // interleave the tenants' tasks (else A's backlog first)
	budgets  map[string]quota.TenantBudget // set before the workers start
}

// specsFor lists the sides of scenario s: [promptq side, baseline side,
// optional third side].
func (c Config) specsFor(s Scenario, l limits) []runSpec {
	promptq, naive := runSpec{mode: ModePromptq, label: ModePromptq}, runSpec{mode: ModeNaive, label: ModeNaive}
	switch s.Kind {
	case KindAdaptive:
		adaptive := runSpec{mode: ModePromptq, label: ModeAdaptive, args: []string{"--adaptive-concurrency"}, adaptive: true}
		return []runSpec{adaptive, naive, promptq}
	case KindSlowDown:
		interval := []string{"--slowdown-interval", SlowDownIntervalDefault.String()}
		promptq.args, promptq.slowDown = interval, SlowDownDefault
		naive.args, naive.slowDown = interval, SlowDownDefault
	case KindTenants:
		capRPM := int64(math.Max(1, math.Round(float64(l.rpm)*TenantCapShare)))
		return []runSpec{
			{mode: ModePromptq, label: ModeBudgets, tenants: true, budgets: map[string]quota.TenantBudget{TenantA: {RPM: capRPM}}},
			{mode: ModePromptq, label: ModeNoBudgets, tenants: true},
		}
	case KindFair:
		return []runSpec{
			{mode: ModePromptq, label: ModeFair, tenants: true, mixed: true},
			{mode: ModePromptq, label: ModeNoFair, tenants: true, mixed: true, args: []string{"--fair-share=false"}},
		}
	}
	return []runSpec{promptq, naive}
}

// payloads builds the n tasks of one run in enqueue order.
func (r runSpec) payloads(run string, n int) []*tasks.Payload {
	ps := make([]*tasks.Payload, 0, n)
	if !r.tenants {
		for i := range n {
			ps = append(ps, Payload(run, i))
		}
		return ps
	}
	nb := max(1, n/(TenantBacklogRatio+1))
	na := 0
	for i := range n {
		tenant, j := TenantA, na
		switch {
		case r.mixed && (i+1)%(TenantBacklogRatio+1) == 0 && i-na < nb:
			tenant, j = TenantB, i-na // every 11th task is B's
		case !r.mixed && i >= n-nb:
			tenant, j = TenantB, i-(n-nb)
		default:
			na++
		}
		p := Payload(run, i)
		p.ID, p.Tenant = fmt.Sprintf("%s-%s-%06d", run, tenant, j), tenant
		ps = append(ps, p)
	}
	return ps
}

// tenantOf is the tenant of a tenants-scenario task ID ("<run>-<tenant>-<n>").
func tenantOf(run, id string) string {
	t, _, _ := strings.Cut(strings.TrimPrefix(id, run+"-"), "-")
	return t
}

// setBudgets stores the tenant budgets of account.
func (e *runEnv) setBudgets(ctx context.Context, account string, budgets map[string]quota.TenantBudget) error {
	if len(budgets) == 0 {
		return nil
	}
	lim, err := quota.New(e.rdb, quota.Config{})
	if err != nil {
		return err
	}
	for t, b := range budgets {
		if err := lim.SetTenantBudget(ctx, account, t, b); err != nil {
			return fmt.Errorf("bench: tenant budget: %w", err)
		}
	}
	return nil
}

// adaptiveLimit reads account's cluster-wide adaptive concurrency limit.
func (e *runEnv) adaptiveLimit(ctx context.Context, account string) (int, error) {
	c, err := quota.NewConcurrency(e.rdb, quota.ConcurrencyConfig{})
	if err != nil {
		return 0, err
	}
	limit, _, err := c.Limit(ctx, account)
	if err != nil {
		return 0, fmt.Errorf("bench: adaptive limit: %w", err)
	}
	return limit, nil
}

// SlowDownTrace is what the slowdown scenario saw of the provider's answer
// rate (successful answers per second, the fake's OK counter) around the
// injection.
type SlowDownTrace struct {
	// InjectedAt is when slow_down started, in seconds since the workers started.
	InjectedAt float64 `json:"injected_at_s"`
	// Length is how long the provider answered 503 slow_down, in seconds.
	Length float64 `json:"length_s"`
	// RateBefore is answers/s in the 5 s before the injection (less if the
	// run had not been going that long).
	RateBefore float64 `json:"ok_per_s_before"`
	// RateAfter is answers/s in the 5 s after the injection started.
	RateAfter float64 `json:"ok_per_s_after"`
	// RateAfterEnd is answers/s in the 5 s after the injection ended.
	RateAfterEnd float64 `json:"ok_per_s_after_end"`
	// PerSecond is answers in each 1-second bucket from the injection until
	// the last task finished (the last buckets include the run's tail).
	PerSecond []int `json:"ok_per_1s_bucket"`
}

// slowWatch injects slow_down once 30% of the tasks are answered and
// samples the fake's OK counter on every poll.
type slowWatch struct {
	length   time.Duration
	injected time.Time
	samples  []okSample
}

type okSample struct {
	at time.Time
	ok int
}

func (s *slowWatch) observe(fake *fakeopenai.Server, total int) {
	st := fake.Stats()
	now := time.Now()
	s.samples = append(s.samples, okSample{now, st.OK})
	if s.injected.IsZero() && st.OK >= total*3/10 {
		fake.SetMode(fakeopenai.ModeSlowDown, s.length)
		s.injected = now
	}
}

// okAt is the OK count of the last sample at or before t.
func (s *slowWatch) okAt(t time.Time) int {
	i := sort.Search(len(s.samples), func(i int) bool { return s.samples[i].at.After(t) })
	if i == 0 {
		return 0
	}
	return s.samples[i-1].ok
}

// rate is answers per second between from and to, cut to the samples taken.
func (s *slowWatch) rate(from, to time.Time) float64 {
	if len(s.samples) == 0 {
		return 0
	}
	from = maxTime(from, s.samples[0].at)
	to = minTime(to, s.samples[len(s.samples)-1].at)
	if d := to.Sub(from).Seconds(); d > 0 {
		return float64(s.okAt(to)-s.okAt(from)) / d
	}
	return 0
}

func (s *slowWatch) trace(start time.Time) *SlowDownTrace {
	if s.injected.IsZero() || len(s.samples) == 0 {
		return nil
	}
	inj, end := s.injected, s.injected.Add(s.length)
	t := &SlowDownTrace{InjectedAt: inj.Sub(start).Seconds(), Length: s.length.Seconds(),
		RateBefore: s.rate(inj.Add(-5*time.Second), inj), RateAfter: s.rate(inj, inj.Add(5*time.Second)),
		RateAfterEnd: s.rate(end, end.Add(5*time.Second))}
	last := s.samples[len(s.samples)-1].at
	for i := 0; i < 120; i++ {
		from := inj.Add(time.Duration(i) * time.Second)
		if from.After(last) {
			break
		}
		t.PerSecond = append(t.PerSecond, s.okAt(from.Add(time.Second))-s.okAt(from))
	}
	return t
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Tenants is what the tenants scenario saw of each tenant's throughput.
type Tenants struct {
	// BothUntil is when the first tenant finished its last task, in seconds
	// since the workers started: until then both tenants had work.
	BothUntil float64 `json:"both_had_work_until_s"`
	// Tenants lists A then B.
	Tenants []TenantResult `json:"tenants"`
}

// TenantResult is one tenant's figures in the tenants scenario.
type TenantResult struct {
	Name      string `json:"name"`
	Completed int    `json:"completed"`
	// BudgetRPM is the tenant's RPM budget (0 = none).
	BudgetRPM int64 `json:"budget_rpm"`
	// ShareWhileBoth is the tenant's share of the tasks completed while
	// both tenants had work (until BothUntil).
	ShareWhileBoth float64 `json:"share_while_both"`
	// RateWhileBoth is the tenant's completions per second until BothUntil.
	RateWhileBoth float64 `json:"rate_while_both_per_s"`
	// FirstDone and Done are the tenant's first and last completion, in
	// seconds since the workers started.
	FirstDone float64 `json:"first_done_s"`
	Done      float64 `json:"done_s"`
}

// tenantResults splits the completions of run by tenant.
func tenantResults(run string, start time.Time, finished map[string]time.Time, budgets map[string]quota.TenantBudget) *Tenants {
	byTenant := map[string][]time.Time{}
	for id, at := range finished {
		t := tenantOf(run, id)
		byTenant[t] = append(byTenant[t], at)
	}
	names := []string{TenantA, TenantB}
	both := time.Time{}
	for _, n := range names {
		ts := byTenant[n]
		sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
		if len(ts) > 0 && (both.IsZero() || ts[len(ts)-1].Before(both)) {
			both = ts[len(ts)-1]
		}
	}
	out := &Tenants{BothUntil: both.Sub(start).Seconds()}
	inWindow := map[string]int{}
	total := 0
	for _, n := range names {
		for _, at := range byTenant[n] {
			if !at.After(both) {
				inWindow[n]++
				total++
			}
		}
	}
	for _, n := range names {
		ts := byTenant[n]
		tr := TenantResult{Name: n, Completed: len(ts), BudgetRPM: budgets[n].RPM}
		if len(ts) > 0 {
			tr.FirstDone, tr.Done = ts[0].Sub(start).Seconds(), ts[len(ts)-1].Sub(start).Seconds()
		}
		if total > 0 {
			tr.ShareWhileBoth = float64(inWindow[n]) / float64(total)
		}
		if out.BothUntil > 0 {
			tr.RateWhileBoth = float64(inWindow[n]) / out.BothUntil
		}
		out.Tenants = append(out.Tenants, tr)
	}
	return out
}

// budgetText describes an RPM budget.
func budgetText(rpm int64) string {
	if rpm == 0 {
		return "none"
	}
	return strconv.FormatInt(rpm, 10) + " rpm"
}
