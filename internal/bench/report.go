package bench

import (
	"encoding/json"
	"fmt"
	"github.com/promptq/promptq/quota"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Mode names the two sides of a comparison.
const (
	ModePromptq = "promptq" // quota control on
	ModeNaive   = "naive"   // --quota-control=false
)

// Report is the result of one bench: every scenario with both modes.
type Report struct {
	StartedAt   time.Time        `json:"started_at"`
	Redis       string           `json:"redis"` // "throwaway" or "shared"
	Concurrency int              `json:"concurrency"`
	Latency     string           `json:"latency"`
	TaskCost    int              `json:"task_cost_tokens"`
	Warmup      string           `json:"warmup"`
	Scenarios   []ScenarioResult `json:"scenarios"`
}

// ScenarioResult holds both runs of one scenario and their ratios.
type ScenarioResult struct {
	Scenario
	RPM   int `json:"rpm"` // 0 = unlimited
	TPM   int `json:"tpm"` // 0 = unlimited
	Tasks int `json:"tasks"`
	// Promptq is the promptq side: with --adaptive-concurrency in the
	// adaptive scenario, with tenant budgets in the tenants scenario.
	Promptq RunResult `json:"promptq"`
	// Naive is the baseline: --quota-control=false, except in the tenants
	// scenario where it is promptq without tenant budgets.
	Naive RunResult `json:"naive"`
	// Plain is plain promptq (no --adaptive-concurrency) in the adaptive
	// scenario; nil elsewhere.
	Plain *RunResult `json:"plain_promptq,omitempty"`
	// Pool is a pool cell's own figures (nil elsewhere); its Naive is empty.
	Pool  *PoolResult `json:"pool,omitempty"`
	Ratio Ratios      `json:"ratio"`
	// ExtraCommandsPerTask is the promptq run's Redis commands executed per
	// task (commandstats, Lua's included) minus the naive run's.
	ExtraCommandsPerTask float64 `json:"extra_commands_executed_per_task"`
	// ExtraEvalshaPerTask is the EVALSHA part of ExtraCommandsPerTask.
	ExtraEvalshaPerTask float64 `json:"extra_evalsha_per_task"`
	// ExtraSentPerTask is the promptq run's commands sent per task (MONITOR,
	// every owner) minus the naive run's.
	ExtraSentPerTask float64 `json:"extra_commands_sent_per_task"`
}

// Ratios are promptq's figure divided by the naive one (0 when the naive figure is 0).
type Ratios struct {
	Utilisation  float64 `json:"utilisation"`
	Throttled    float64 `json:"throttled"`
	Elapsed      float64 `json:"elapsed"`
	CommandsTask float64 `json:"commands_per_task"`
	HandlerP50   float64 `json:"handler_p50"`
	E2EP50       float64 `json:"e2e_p50"`
}

// RunResult is what one mode of one scenario measured.
type RunResult struct {
	Mode string `json:"mode"`
	// Tasks enqueued; Completed and Archived at the end; Lost = the rest.
	Tasks     int `json:"tasks"`
	Completed int `json:"completed"`
	Archived  int `json:"archived"`
	Lost      int `json:"lost"`
	// Provider-side counters (the fake's Stats).
	Requests      int `json:"requests"`
	OK            int `json:"ok"`
	RateLimited   int `json:"rate_limited"`
	QuotaErrors   int `json:"quota_errors"`
	SlowDowns     int `json:"slow_downs,omitempty"` // 503 slow_down answers
	TokensCharged int `json:"tokens_charged"`
	MaxInFlight   int `json:"max_in_flight"`
	// Elapsed is from the first request to the admission of the last
	// answered one (last OK minus the configured latency), in seconds.
	Elapsed float64 `json:"elapsed_s"`
	// Wall is the whole run, workers started to last task finished, in seconds.
	Wall float64 `json:"wall_s"`
	// Utilisation is the binding limit's (work - burst capacity) / (Elapsed
	// * limit per second); Binding names that limit. Zero when unlimited.
	Utilisation        float64 `json:"utilisation"`
	Binding            string  `json:"binding,omitempty"`
	RequestUtilisation float64 `json:"request_utilisation,omitempty"`
	TokenUtilisation   float64 `json:"token_utilisation,omitempty"`
	Throttled          float64 `json:"throttled_share"` // 429 rate_limit / requests
	// Commands executed by Redis (INFO commandstats deltas: a script's
	// redis.call commands count as well as the EVALSHA), without the bench's own.
	CommandsTotal   int64            `json:"redis_commands_executed"`
	CommandsPerTask float64          `json:"redis_commands_executed_per_task"`
	EvalshaPerTask  float64          `json:"evalsha_per_task"`
	Commands        map[string]int64 `json:"redis_commands_executed_by_name"`
	// Commands sent by clients (MONITOR; each is at most one round trip,
	// fewer when pipelined), by owner (promptq, asynq, other) and name.
	SentTotal             int64                       `json:"redis_commands_sent"`
	SentPerTask           map[string]float64          `json:"redis_commands_sent_per_task_by_owner"`
	PromptqEvalshaPerTask float64                     `json:"promptq_evalsha_per_task"`
	Sent                  map[string]map[string]int64 `json:"redis_commands_sent_by_owner"`
	HandlerP50            float64                     `json:"handler_p50_ms"`
	HandlerP99            float64                     `json:"handler_p99_ms"`
	E2EP50                float64                     `json:"e2e_p50_ms"`
	E2EP99                float64                     `json:"e2e_p99_ms"`
	DuplicateTasks        int                         `json:"tasks_sent_more_than_once"`
	DuplicateOK           int                         `json:"duplicate_ok"` // answers beyond one per completed task
	Outage                *Outage                     `json:"outage,omitempty"`
	// AdaptiveLimit is the account's cluster-wide adaptive concurrency
	// limit at the end of a run with --adaptive-concurrency.
	AdaptiveLimit int            `json:"adaptive_limit,omitempty"`
	SlowDown      *SlowDownTrace `json:"slow_down,omitempty"`
	Tenants       *Tenants       `json:"tenants,omitempty"`
	WorkerErrors  string         `json:"worker_errors,omitempty"`
	// Concurrency is each worker's concurrency in this run.
	Concurrency int `json:"concurrency"`
	// Window is what the fake's accounting shows after the warm-up (nil
	// for the unlimited cost scenarios).
	Window *Window `json:"window,omitempty"`
	// CallsAfterAnswered counts provider calls for a task ID that had
	// already been answered: duplicate calls.
	CallsAfterAnswered int `json:"duplicate_calls"`
	// Cut is true when a matrix run was stopped Config.Drain after its cell
	// duration with tasks still queued; Unfinished counts them (they are
	// not lost).
	Cut        bool `json:"cut,omitempty"`
	Unfinished int  `json:"unfinished,omitempty"`
}

// SentTotalPerTask is every client command sent per task.
func (r RunResult) SentTotalPerTask() float64 {
	var t float64
	for _, v := range r.SentPerTask {
		t += v
	}
	return t
}

// Outage is what the insufficient_quota scenario saw.
type Outage struct {
	// InFlightAtFirst429 is how many requests the provider was serving when
	// it sent the first insufficient_quota 429.
	InFlightAtFirst429 int `json:"in_flight_at_first_429"`
	// RequestsAfterFirst429 is how many requests reached the provider after
	// it while the outage lasted (a well-behaved client sends at most the
	// ones already in flight).
	RequestsAfterFirst429 int `json:"requests_after_first_429"`
	// RetriesRunAtResume is how many tasks the operator step moved from the
	// retry set back to pending (they were parked with the pause's delay).
	RetriesRunAtResume int `json:"retries_run_at_resume"`
	// Timeline lists what happened, in seconds since the workers started.
	Timeline []Event `json:"timeline"`
}

// Event is one point of an outage timeline.
type Event struct {
	At   float64 `json:"at_s"`
	What string  `json:"what"`
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes one block per scenario: each figure for promptq, the
// naive baseline and their ratio, then outage timelines.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "promptq bench — %s Redis, concurrency %d per worker, provider latency %s, %d tokens per task\n\n",
		r.Redis, r.Concurrency, r.Latency, r.TaskCost)
	if err := r.writeMatrix(w); err != nil {
		return err
	}
	if err := r.writePool(w); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(r.Scenarios) > 0 && slices.ContainsFunc(r.Scenarios, func(s ScenarioResult) bool { return s.Cell == nil && s.Pool == nil }) {
		fmt.Fprintln(tw, "scenario\tmetric\tpromptq\tnaive\tratio\t")
	}
	for _, s := range r.Scenarios {
		if s.Cell != nil || s.Pool != nil {
			continue // in the matrix or pool table
		}
		p, n := s.Promptq, s.Naive
		head := fmt.Sprintf("%s (K=%d, %s, rpm=%s tpm=%s, %d tasks%s)", s.Name, s.Workers, burstText(s), limitText(s.RPM), limitText(s.TPM), s.Tasks, sidesText(s))
		rows := []struct {
			metric string
			p, n   string
			ratio  float64
		}{
			{"utilisation (" + cmpStr(p.Binding, "-") + ")", f3(p.Utilisation), f3(n.Utilisation), s.Ratio.Utilisation},
			{"utilisation after warm-up", windowUtil(p), windowUtil(n), math.NaN()},
			{"429 rate_limit share", pct(p.Throttled), pct(n.Throttled), s.Ratio.Throttled},
			{"requests / ok", fmt.Sprintf("%d/%d", p.Requests, p.OK), fmt.Sprintf("%d/%d", n.Requests, n.OK), math.NaN()},
			{"elapsed at limit (s)", f2(p.Elapsed), f2(n.Elapsed), s.Ratio.Elapsed},
			{"wall (s)", f2(p.Wall), f2(n.Wall), math.NaN()},
			{"redis cmds sent/task", f2(p.SentTotalPerTask()), f2(n.SentTotalPerTask()), ratio(p.SentTotalPerTask(), n.SentTotalPerTask())},
			{"  promptq's (evalsha)", f2(p.SentPerTask[OwnerPromptq]) + " (" + f2(p.PromptqEvalshaPerTask) + ")", f2(n.SentPerTask[OwnerPromptq]), math.NaN()},
			{"  asynq's", f2(p.SentPerTask[OwnerAsynq]), f2(n.SentPerTask[OwnerAsynq]), ratio(p.SentPerTask[OwnerAsynq], n.SentPerTask[OwnerAsynq])},
			{"redis cmds executed/task (incl. Lua)", f2(p.CommandsPerTask), f2(n.CommandsPerTask), s.Ratio.CommandsTask},
			{"handler p50/p99 (ms)", f0(p.HandlerP50) + "/" + f0(p.HandlerP99), f0(n.HandlerP50) + "/" + f0(n.HandlerP99), s.Ratio.HandlerP50},
			{"enqueue→done p50/p99 (ms)", f0(p.E2EP50) + "/" + f0(p.E2EP99), f0(n.E2EP50) + "/" + f0(n.E2EP99), s.Ratio.E2EP50},
			{"lost / archived", fmt.Sprintf("%d/%d", p.Lost, p.Archived), fmt.Sprintf("%d/%d", n.Lost, n.Archived), math.NaN()},
			{"tasks sent >1 / dup OK", fmt.Sprintf("%d/%d", p.DuplicateTasks, p.DuplicateOK), fmt.Sprintf("%d/%d", n.DuplicateTasks, n.DuplicateOK), math.NaN()},
		}
		if p.Outage != nil && n.Outage != nil {
			rows = append(rows,
				struct {
					metric string
					p, n   string
					ratio  float64
				}{"quota 429s", fmt.Sprint(p.QuotaErrors), fmt.Sprint(n.QuotaErrors), math.NaN()},
				struct {
					metric string
					p, n   string
					ratio  float64
				}{"reqs after 1st quota 429 / in flight then",
					fmt.Sprintf("%d/%d", p.Outage.RequestsAfterFirst429, p.Outage.InFlightAtFirst429),
					fmt.Sprintf("%d/%d", n.Outage.RequestsAfterFirst429, n.Outage.InFlightAtFirst429), math.NaN()})
		}
		for i, row := range rows {
			name := ""
			if i == 0 {
				name = head
			}
			ratio := ""
			if !math.IsNaN(row.ratio) {
				ratio = f2(row.ratio)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", name, row.metric, row.p, row.n, ratio)
		}
		fmt.Fprintln(tw, "\t\t\t\t\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range r.Scenarios {
		for _, run := range []RunResult{s.Promptq, s.Naive} {
			if run.Outage == nil {
				continue
			}
			fmt.Fprintf(w, "%s / %s outage timeline (s since workers started):\n", s.Name, run.Mode)
			for _, e := range run.Outage.Timeline {
				fmt.Fprintf(w, "  %7.2f  %s\n", e.At, e.What)
			}
		}
	}
	for _, s := range r.Scenarios {
		if err := writeDetails(w, s); err != nil {
			return err
		}
	}
	for _, s := range r.Scenarios {
		runs := []RunResult{s.Promptq, s.Naive}
		if s.Plain != nil {
			runs = append(runs, *s.Plain)
		}
		if s.Pool != nil {
			runs = runs[:1]
		}
		for _, run := range runs {
			if errs := errorLines(run.WorkerErrors); errs != "" {
				fmt.Fprintf(w, "%s / %s worker errors (last lines of stderr; the JSON report has warnings too):\n%s\n", s.Name, run.Mode, indent(errs))
			}
		}
	}
	return nil
}

func windowUtil(r RunResult) string {
	if r.Window == nil {
		return "-"
	}
	return f3(r.Window.Utilisation)
}

// errorLines keeps the lines of worker output that are not info or warn logs.
func errorLines(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) == "" || strings.Contains(l, `"level":"warn"`) || strings.Contains(l, `"level":"info"`) {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

func burstText(s ScenarioResult) string {
	if s.Bound == BoundNone {
		return "unlimited"
	}
	return "burst " + s.Burst.String()
}

func limitText(n int) string {
	if n == 0 {
		return "∞"
	}
	return fmt.Sprint(n)
}

func cmpStr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

func f0(v float64) string  { return fmt.Sprintf("%.0f", v) }
func f2(v float64) string  { return fmt.Sprintf("%.2f", v) }
func f3(v float64) string  { return fmt.Sprintf("%.3f", v) }
func pct(v float64) string { return fmt.Sprintf("%.2f%%", 100*v) }

// ratio is a/b, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// percentile returns the p-th percentile (0..100) of xs by nearest rank.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// sidesText names the two columns of a feature scenario in its heading.
func sidesText(s ScenarioResult) string {
	switch s.Kind {
	case KindAdaptive:
		return "; promptq = --adaptive-concurrency, plain promptq below"
	case KindTenants:
		return "; promptq = A capped, naive = promptq without budgets"
	case KindFair:
		return "; A and B interleaved 10:1 in one queue, equal weights; naive = promptq --fair-share=false"
	case KindSlowDown:
		return fmt.Sprintf("; 503 slow_down for %s at 30%%, --slowdown-interval %s", SlowDownDefault, SlowDownIntervalDefault)
	}
	return ""
}

// writeDetails writes the extra block of a feature scenario: one column per side.
func writeDetails(w io.Writer, s ScenarioResult) error {
	runs := []RunResult{s.Promptq}
	if s.Plain != nil {
		runs = append(runs, *s.Plain)
	}
	runs = append(runs, s.Naive)
	var rows [][]string
	add := func(metric string, f func(r RunResult) string) {
		row := []string{metric}
		for _, r := range runs {
			row = append(row, f(r))
		}
		rows = append(rows, row)
	}
	switch s.Kind {
	case KindAdaptive:
		add("utilisation", func(r RunResult) string { return f3(r.Utilisation) })
		add("429 rate_limit share", func(r RunResult) string { return pct(r.Throttled) })
		add("max in flight at provider", func(r RunResult) string { return fmt.Sprint(r.MaxInFlight) })
		add("final adaptive limit", func(r RunResult) string {
			if r.Mode != ModeAdaptive {
				return "-"
			}
			return fmt.Sprint(r.AdaptiveLimit)
		})
		add("elapsed at limit / wall (s)", func(r RunResult) string { return f2(r.Elapsed) + " / " + f2(r.Wall) })
		add("handler p50/p99 (ms)", func(r RunResult) string { return f0(r.HandlerP50) + "/" + f0(r.HandlerP99) })
	case KindSlowDown:
		add("503 slow_down answers", func(r RunResult) string { return fmt.Sprint(r.SlowDowns) })
		add("completed / tasks (lost, archived)", func(r RunResult) string {
			return fmt.Sprintf("%d/%d (%d, %d)", r.Completed, r.Tasks, r.Lost, r.Archived)
		})
		add("429 rate_limit share", func(r RunResult) string { return pct(r.Throttled) })
		add("injected at (s)", func(r RunResult) string {
			return slowText(r, func(t *SlowDownTrace) string { return f2(t.InjectedAt) })
		})
		add("ok/s 5s before", func(r RunResult) string {
			return slowText(r, func(t *SlowDownTrace) string { return f2(t.RateBefore) })
		})
		add("ok/s 5s after start", func(r RunResult) string { return slowText(r, func(t *SlowDownTrace) string { return f2(t.RateAfter) }) })
		add("ok/s 5s after end", func(r RunResult) string {
			return slowText(r, func(t *SlowDownTrace) string { return f2(t.RateAfterEnd) })
		})
		add("wall (s)", func(r RunResult) string { return f2(r.Wall) })
	case KindTenants, KindFair:
		add("tenants done at A / B (s)", func(r RunResult) string {
			return tenantText(r, func(t TenantResult) string { return f2(t.Done) })
		})
		add("share while both had work A / B", func(r RunResult) string {
			return tenantText(r, func(t TenantResult) string { return pct(t.ShareWhileBoth) })
		})
		add("tasks/s while both had work A / B", func(r RunResult) string {
			return tenantText(r, func(t TenantResult) string { return f2(t.RateWhileBoth) })
		})
		add("both had work until (s)", func(r RunResult) string {
			if r.Tenants == nil {
				return "-"
			}
			return f2(r.Tenants.BothUntil)
		})
		add("B's first answer (s)", func(r RunResult) string {
			return tenantText(r, func(t TenantResult) string {
				if t.Name != TenantB {
					return ""
				}
				return f2(t.FirstDone)
			})
		})
		add("budget A / B", func(r RunResult) string {
			return tenantText(r, func(t TenantResult) string { return budgetText(t.BudgetRPM) })
		})
		add("429 rate_limit share", func(r RunResult) string { return pct(r.Throttled) })
		add("completed / tasks", func(r RunResult) string { return fmt.Sprintf("%d/%d", r.Completed, r.Tasks) })
	default:
		return nil
	}
	fmt.Fprintf(w, "\n%s, side by side:\n", s.Name)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "  metric"
	for _, r := range runs {
		head += "\t" + r.Mode
	}
	fmt.Fprintln(tw, head+"\t")
	for _, row := range rows {
		fmt.Fprintln(tw, "  "+strings.Join(row, "\t")+"\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	switch s.Kind {
	case KindSlowDown:
		for _, r := range runs {
			if r.SlowDown != nil {
				fmt.Fprintf(w, "  %s ok per 1s bucket from the injection: %v\n", r.Mode, r.SlowDown.PerSecond)
			}
		}
	case KindTenants:
		fmt.Fprint(w, tenantNote(s.Promptq))
	case KindFair:
		fmt.Fprint(w, "  What it shows: with fair sharing, A's requests yield scheduled turns while A is ahead of B (its\n"+
			"  tasks go back to the queue), so B, a tenth of the arrivals, gets up to half the account while both have work.\n")
	}
	return nil
}

func slowText(r RunResult, f func(*SlowDownTrace) string) string {
	if r.SlowDown == nil {
		return "-"
	}
	return f(r.SlowDown)
}

func tenantText(r RunResult, f func(TenantResult) string) string {
	if r.Tenants == nil {
		return "-"
	}
	var parts []string
	for _, t := range r.Tenants.Tenants {
		if v := f(t); v != "" {
			parts = append(parts, v)
		}
	}
	return strings.Join(parts, " / ")
}

// tenantNote says what the tenants scenario shows and what it does not.
func tenantNote(r RunResult) string {
	note := fmt.Sprintf("  What it shows: A's budget caps A at %.0f%% of the account RPM, so once A's cap binds the rest of\n"+
		"  the account is left for B. With A's backlog ahead of B in one FIFO queue, B has no pending work (and\n"+
		"  weighted fair sharing cannot favour it) until A's tasks are held back by the cap (returned to the\n"+
		"  queue) or drained; fair-k3 shows fair sharing with the tenants' tasks interleaved.\n", 100*TenantCapShare)
	if r.Tenants == nil {
		return note
	}
	burst := int64(quota.TenantBurst.Seconds())
	for _, t := range r.Tenants.Tenants {
		if t.Name == TenantA && t.BudgetRPM > 0 && int64(t.Completed) <= t.BudgetRPM*burst/60 {
			// A tenant bucket holds quota.TenantBurst of its budget.
			note += fmt.Sprintf("  Here A's %d tasks fit in its budget's burst (%ds of %d rpm), so the cap never bound.\n",
				t.Completed, burst, t.BudgetRPM)
		}
	}
	return note
}
