package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// writeMatrix writes one line per matrix cell, promptq and the naive
// baseline side by side (p / n in each column).
func (r *Report) writeMatrix(w io.Writer) error {
	var cells []ScenarioResult
	for _, s := range r.Scenarios {
		if s.Cell != nil && s.Kind != KindPool {
			cells = append(cells, s)
		}
	}
	if len(cells) == 0 {
		return nil
	}
	fmt.Fprintf(w, "matrix — each column promptq / naive; utilisation and 429s after the warm-up (%s) from the fake's own accounting;\n"+
		"base: chars charge, prose, TPM-bound, burst 1s, 300ms ±100ms, retry-after whole seconds (precise wait in the body only), K=3\n\n",
		r.Warmup)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "cell\tK×C\tbinding\tutilisation\t429 share\t429 share (whole run)\trequests/answer\tlost\tunfinished\tduplicate calls\thalving: 429 after / recovery (s)\t")
	for _, s := range cells {
		p, n := s.Promptq, s.Naive
		both := func(f func(RunResult) string) string { return f(p) + " / " + f(n) }
		win := func(f func(*Window) string) func(RunResult) string {
			return func(r RunResult) string {
				if r.Window == nil {
					return "-"
				}
				return f(r.Window)
			}
		}
		halving := "-"
		if s.Cell.Halve {
			halving = both(win(func(w *Window) string {
				if w.HalvedAt == 0 {
					return "-"
				}
				rec := "never"
				if w.Recovery >= 0 {
					rec = f2(w.Recovery)
				}
				return pct(w.ThrottledAfterHalving) + " " + rec
			}))
		}
		binding := "-"
		if p.Window != nil {
			binding = p.Window.Binding
		}
		fmt.Fprintf(tw, "%s\t%d×%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", s.Name, s.Workers, p.Concurrency, binding,
			both(win(func(w *Window) string { return f3(w.Utilisation) })),
			both(win(func(w *Window) string { return pct(w.Throttled) })),
			both(func(r RunResult) string { return pct(r.Throttled) }),
			both(func(r RunResult) string { return f2(ratio(float64(r.Requests), float64(r.OK))) }),
			both(func(r RunResult) string { return fmt.Sprint(r.Lost) }),
			both(func(r RunResult) string { return fmt.Sprint(r.Unfinished) }),
			both(func(r RunResult) string { return fmt.Sprint(r.CallsAfterAnswered) }),
			halving)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, s := range cells {
		fmt.Fprintf(w, "  %-28s rpm %-6d tpm %-8d %4d tasks, %s\n", s.Name, s.RPM, s.TPM, s.Tasks, cellText(s))
	}
	fmt.Fprintln(w)
	return nil
}

// cellText describes a cell's provider and prompts.
func cellText(s ScenarioResult) string {
	pt := providerText(s.Cell)
	parts := []string{pt[0], string(s.Cell.Prompts) + " prompts", s.Bound.String() + "-bound", "burst " + s.Burst.String(), pt[1], pt[2]}
	if s.Cell.Halve {
		parts = append(parts, "limits halve mid-run")
	}
	return strings.Join(parts, ", ")
}

// providerText describes how cell c's provider charges and answers:
// charge, latency, retry-after.
func providerText(c *Cell) []string {
	charge := string(c.Charge)
	if c.ChargeScale != 0 && c.ChargeScale != 1 {
		charge += fmt.Sprintf(" ×%.2g", c.ChargeScale)
	}
	if c.ChargeNoise > 0 {
		charge += fmt.Sprintf(" ±%.0f%%", 100*c.ChargeNoise)
	}
	return []string{"charge " + charge, "latency " + c.Latency.String() + " ±" + c.Jitter.String(), "retry-after " + string(c.RetryAfter)}
}

// String is the bound's name.
func (b Bound) String() string { return strings.ToUpper(string(b)) }
