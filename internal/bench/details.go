package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/promptq/promptq/quota"
)

// writeDetails writes the extra block of a feature scenario: one column per side.
func writeDetails(w io.Writer, s ScenarioResult) error {
	metrics := detailMetrics(s.Kind)
	if metrics == nil {
		return nil
	}
	runs := []RunResult{s.Promptq}
	if s.Plain != nil {
		runs = append(runs, *s.Plain)
	}
	runs = append(runs, s.Naive)
	fmt.Fprintf(w, "\n%s, side by side:\n", s.Name)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "  metric"
	for _, r := range runs {
		head += "\t" + r.Mode
	}
	fmt.Fprintln(tw, head+"\t")
	for _, m := range metrics {
		row := []string{m.name}
		for _, r := range runs {
			row = append(row, m.value(r))
		}
		fmt.Fprintln(tw, "  "+strings.Join(row, "\t")+"\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	writeDetailNotes(w, s, runs)
	return nil
}

// detailMetric is one row of a feature scenario's block: its name and how
// to read it off each side's run.
type detailMetric struct {
	name  string
	value func(RunResult) string
}

// detailMetrics lists the rows of a feature scenario's block; nil for the
// kinds that have none.
func detailMetrics(kind string) []detailMetric {
	switch kind {
	case KindAdaptive:
		return adaptiveMetrics()
	case KindSlowDown:
		return slowDownMetrics()
	case KindTenants, KindFair:
		return tenantMetrics()
	}
	return nil
}

func adaptiveMetrics() []detailMetric {
	return []detailMetric{
		{"utilisation", func(r RunResult) string { return f3(r.Utilisation) }},
		{"429 rate_limit share", func(r RunResult) string { return pct(r.Throttled) }},
		{"max in flight at provider", func(r RunResult) string { return fmt.Sprint(r.MaxInFlight) }},
		{"final adaptive limit", func(r RunResult) string {
			if r.Mode != ModeAdaptive {
				return "-"
			}
			return fmt.Sprint(r.AdaptiveLimit)
		}},
		{"elapsed at limit / wall (s)", func(r RunResult) string { return f2(r.Elapsed) + " / " + f2(r.Wall) }},
		{"handler p50/p99 (ms)", func(r RunResult) string { return f0(r.HandlerP50) + "/" + f0(r.HandlerP99) }},
	}
}

func slowDownMetrics() []detailMetric {
	slow := func(f func(*SlowDownTrace) string) func(RunResult) string {
		return func(r RunResult) string { return slowText(r, f) }
	}
	return []detailMetric{
		{"503 slow_down answers", func(r RunResult) string { return fmt.Sprint(r.SlowDowns) }},
		{"completed / tasks (lost, archived)", func(r RunResult) string {
			return fmt.Sprintf("%d/%d (%d, %d)", r.Completed, r.Tasks, r.Lost, r.Archived)
		}},
		{"429 rate_limit share", func(r RunResult) string { return pct(r.Throttled) }},
		{"injected at (s)", slow(func(t *SlowDownTrace) string { return f2(t.InjectedAt) })},
		{"ok/s 5s before", slow(func(t *SlowDownTrace) string { return f2(t.RateBefore) })},
		{"ok/s 5s after start", slow(func(t *SlowDownTrace) string { return f2(t.RateAfter) })},
		{"ok/s 5s after end", slow(func(t *SlowDownTrace) string { return f2(t.RateAfterEnd) })},
		{"wall (s)", func(r RunResult) string { return f2(r.Wall) }},
	}
}

func tenantMetrics() []detailMetric {
	tenant := func(f func(TenantResult) string) func(RunResult) string {
		return func(r RunResult) string { return tenantText(r, f) }
	}
	return []detailMetric{
		{"tenants done at A / B (s)", tenant(func(t TenantResult) string { return f2(t.Done) })},
		{"share while both had work A / B", tenant(func(t TenantResult) string { return pct(t.ShareWhileBoth) })},
		{"tasks/s while both had work A / B", tenant(func(t TenantResult) string { return f2(t.RateWhileBoth) })},
		{"both had work until (s)", func(r RunResult) string {
			if r.Tenants == nil {
				return "-"
			}
			return f2(r.Tenants.BothUntil)
		}},
		{"B's first answer (s)", tenant(func(t TenantResult) string {
			if t.Name != TenantB {
				return ""
			}
			return f2(t.FirstDone)
		})},
		{"budget A / B", tenant(func(t TenantResult) string { return budgetText(t.BudgetRPM) })},
		{"429 rate_limit share", func(r RunResult) string { return pct(r.Throttled) }},
		{"completed / tasks", func(r RunResult) string { return fmt.Sprintf("%d/%d", r.Completed, r.Tasks) }},
	}
}

// writeDetailNotes writes what follows a feature scenario's block: the
// slow_down buckets, or what the tenants and fair scenarios show.
func writeDetailNotes(w io.Writer, s ScenarioResult, runs []RunResult) {
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
