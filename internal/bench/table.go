package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

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
	if err := r.writeComparison(w); err != nil {
		return err
	}
	r.writeTimelines(w)
	for _, s := range r.Scenarios {
		if err := writeDetails(w, s); err != nil {
			return err
		}
	}
	r.writeWorkerErrors(w)
	return nil
}

// tableRow is one figure of the promptq-versus-naive table; ratio is NaN
// when the row has none.
type tableRow struct {
	metric string
	p, n   string
	ratio  float64
}

// writeComparison writes the promptq-versus-naive table: one block per
// scenario that is neither a matrix nor a pool cell.
func (r *Report) writeComparison(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(r.Scenarios) > 0 && slices.ContainsFunc(r.Scenarios, func(s ScenarioResult) bool { return s.Cell == nil && s.Pool == nil }) {
		fmt.Fprintln(tw, "scenario\tmetric\tpromptq\tnaive\tratio\t")
	}
	for _, s := range r.Scenarios {
		if s.Cell != nil || s.Pool != nil {
			continue // in the matrix or pool table
		}
		head := fmt.Sprintf("%s (K=%d, %s, rpm=%s tpm=%s, %d tasks%s)", s.Name, s.Workers, burstText(s), limitText(s.RPM), limitText(s.TPM), s.Tasks, sidesText(s))
		for i, row := range comparisonRows(s) {
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
	return tw.Flush()
}

// comparisonRows are the figures of one scenario's block, with the outage
// figures when both sides had an outage.
func comparisonRows(s ScenarioResult) []tableRow {
	p, n := s.Promptq, s.Naive
	rows := []tableRow{
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
			tableRow{"quota 429s", fmt.Sprint(p.QuotaErrors), fmt.Sprint(n.QuotaErrors), math.NaN()},
			tableRow{"reqs after 1st quota 429 / in flight then",
				fmt.Sprintf("%d/%d", p.Outage.RequestsAfterFirst429, p.Outage.InFlightAtFirst429),
				fmt.Sprintf("%d/%d", n.Outage.RequestsAfterFirst429, n.Outage.InFlightAtFirst429), math.NaN()})
	}
	return rows
}

// writeTimelines writes the outage timeline of every run that had one.
func (r *Report) writeTimelines(w io.Writer) {
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
}

// writeWorkerErrors writes the error lines of every run's worker output.
func (r *Report) writeWorkerErrors(w io.Writer) {
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
