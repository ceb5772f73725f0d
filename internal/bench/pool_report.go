package bench

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"

	"github.com/promptq/promptq/internal/fakeopenai"
	"github.com/promptq/promptq/tasks"
)

// PoolResult is what a pool cell measured besides the run's totals
// (ScenarioResult.Promptq). Only promptq runs in a pool cell: the naive
// baseline has no notion of a pool, so ScenarioResult.Naive stays empty.
type PoolResult struct {
	// Accounts are the pool's accounts in file order, with what the fake
	// saw of each.
	Accounts []PoolAccountResult `json:"accounts"`
	// MeanTaskCost is the prompts' mean charge in tokens (input + max output).
	MeanTaskCost float64 `json:"mean_task_cost_tokens"`
	// Window is pool-2x300's combined figures after the warm-up.
	Window *PoolWindow `json:"window,omitempty"`
	// Failover is pool-failover's figures.
	Failover *Failover `json:"failover,omitempty"`
	// Phases are pool-tiers' phase A and phase B.
	Phases []TierPhase `json:"phases,omitempty"`
	// InFlightBound is workers × concurrency: the most requests the pool
	// can have in flight.
	InFlightBound int `json:"in_flight_bound"`
	// RetriesSpent counts tasks whose result shows more than one attempt.
	RetriesSpent int `json:"retries_spent"`
	// Unattributed counts results that name no account.
	Unattributed int `json:"results_without_account"`
}

// PoolAccountResult is one account of a pool cell.
type PoolAccountResult struct {
	poolAccount
	Requests           int `json:"requests"`
	OK                 int `json:"ok"`
	RateLimited        int `json:"rate_limited"`
	QuotaErrors        int `json:"quota_errors"`
	TokensCharged      int `json:"tokens_charged"`
	CallsAfterAnswered int `json:"duplicate_calls"`
	// Share is the account's share of all OK answers.
	Share float64 `json:"share_of_answers"`
	// Served is how many results name the account.
	Served int `json:"results_naming_it"`
}

// PoolWindow is what the fake's accounting shows of some accounts together
// over a window (see poolUtilisation).
type PoolWindow struct {
	// From and To bound the window, in seconds since the first request.
	From float64 `json:"from_s"`
	To   float64 `json:"to_s"`
	// Binding is the more utilised limit, "requests" or "tokens", and
	// Utilisation its figure.
	Binding            string  `json:"binding"`
	Utilisation        float64 `json:"utilisation"`
	RequestUtilisation float64 `json:"request_utilisation"`
	TokenUtilisation   float64 `json:"token_utilisation"`
	// Throttled is the share of the window's Requests answered 429
	// rate_limit_exceeded (RateLimited).
	Throttled   float64 `json:"throttled_share"`
	RateLimited int     `json:"rate_limited"`
	Requests    int     `json:"requests"`
}

// Failover is what pool-failover saw.
type Failover struct {
	// Account ran out of quota; Remaining carried on.
	Account   string `json:"account"`
	Remaining string `json:"remaining"`
	// At is when the account switched to insufficient_quota, in seconds
	// since the first request, after AnsweredBefore answers.
	At             float64 `json:"at_s"`
	AnsweredBefore int     `json:"answered_before"`
	// FirstQuotaError is when it sent its first insufficient_quota 429 (-1: never).
	FirstQuotaError           float64 `json:"first_quota_error_s"`
	InFlightAtFirstQuotaError int     `json:"in_flight_at_first_quota_error"`
	// RequestsAfterFirstQuotaError is the requests it got after that 429;
	// the bar is InFlightBound (workers × concurrency).
	RequestsAfterFirstQuotaError int `json:"requests_after_first_quota_error"`
	QuotaErrors                  int `json:"quota_errors"`
	InFlightBound                int `json:"in_flight_bound"`
	// Window is the remaining account's figures from the failover to its
	// last admission.
	Window PoolWindow `json:"remaining_window"`
}

// TierPhase is one phase of pool-tiers.
type TierPhase struct {
	Name  string `json:"name"` // "A" or "B"
	Tasks int    `json:"tasks"`
	// Offered is the offered load as a share of the primaries' limit
	// (phase A); 0 for phase B's backlog.
	Offered float64 `json:"offered_share_of_primaries,omitempty"`
	// OK is each account's answers in the phase, in account order.
	OK []int `json:"ok_by_account"`
	// OverflowShare is the tier-2 account's share of the phase's answers.
	OverflowShare float64 `json:"overflow_share"`
	// Primaries is the tier-1 accounts' figures over the phase (phase B:
	// from the backlog to their last admission), nil for phase A.
	Primaries *PoolWindow `json:"primaries,omitempty"`
	// From and To bound the phase, in seconds since the first request.
	From float64 `json:"from_s"`
	To   float64 `json:"to_s"`
}

// poolWindow measures the sample series accts between from and to; first
// is the run's first request.
func poolWindow(accts [][]fakeopenai.Sample, first, from, to time.Time, maxCut time.Duration) PoolWindow {
	w := PoolWindow{From: from.Sub(first).Seconds(), To: to.Sub(first).Seconds(), Binding: "requests"}
	if !to.After(from) {
		return w
	}
	w.RequestUtilisation = poolUtilisation(accts, from, to, maxCut, false)
	w.TokenUtilisation = poolUtilisation(accts, from, to, maxCut, true)
	w.Utilisation = w.RequestUtilisation
	if w.TokenUtilisation > w.RequestUtilisation {
		w.Utilisation, w.Binding = w.TokenUtilisation, "tokens"
	}
	w.Throttled, w.RateLimited, w.Requests = poolThrottled(accts, from, to)
	return w
}

// lastAdmit is the last admission of any of accts (zero if none).
func lastAdmit(accts [][]fakeopenai.Sample) time.Time {
	var t time.Time
	for _, s := range accts {
		if len(s) > 0 && s[len(s)-1].LastAdmitAt.After(t) {
			t = s[len(s)-1].LastAdmitAt
		}
	}
	return t
}

// afterLastAdmit is where a window that runs to the accounts' last admission
// ends: maxCut past it, which admittedSpan cuts back to the sample taken
// right after it. Ending at the admission's own time left that sample out
// (samples come every 20 ms, the admission between two of them) and counted
// the refill the last request had waited for as unused: up to one large
// prompt's worth, 8% of pool-failover's remaining-account window.
func afterLastAdmit(accts [][]fakeopenai.Sample, maxCut time.Duration) time.Time {
	return lastAdmit(accts).Add(maxCut)
}

// result computes the cell's figures once the run is over.
func (w *poolWatch) result(cfg Config, inFlightBound int) *PoolResult {
	pr := &PoolResult{MeanTaskCost: w.plan.cost, InFlightBound: inFlightBound}
	total := 0
	for i, n := range w.names {
		st := w.fake.Account(n).Stats()
		pr.Accounts = append(pr.Accounts, PoolAccountResult{poolAccount: w.plan.accounts[i], Requests: st.Requests, OK: st.OK,
			RateLimited: st.RateLimited, QuotaErrors: st.QuotaErrors, TokensCharged: st.TokensCharged, CallsAfterAnswered: st.CallsAfterAnswered})
		total += st.OK
	}
	for i := range pr.Accounts {
		pr.Accounts[i].Share = ratio(float64(pr.Accounts[i].OK), float64(total))
	}
	if w.first.IsZero() {
		return pr
	}
	switch w.cell {
	case PoolCell2x300:
		from, to := w.first.Add(cfg.Warmup), minTime(w.first.Add(cfg.Warmup+cfg.PoolDuration), lastAdmit(w.samples))
		pw := poolWindow(w.samples, w.first, from, to, w.plan.maxCut)
		pr.Window = &pw
	case PoolCellFailover:
		pr.Failover = w.failover(inFlightBound)
	case PoolCellTiers:
		pr.Phases = w.phases(pr.Accounts)
	}
	return pr
}

// failover is pool-failover's figures: the first account failed, the second remained.
func (w *poolWatch) failover(inFlightBound int) *Failover {
	if w.failedAt.IsZero() {
		return nil
	}
	st := w.fake.Account(w.names[0]).Stats()
	f := &Failover{Account: w.plan.accounts[0].Name, Remaining: w.plan.accounts[1].Name, At: w.failedAt.Sub(w.first).Seconds(),
		AnsweredBefore: w.answeredAtFail, FirstQuotaError: -1, InFlightAtFirstQuotaError: st.InFlightAtFirstQuotaError,
		RequestsAfterFirstQuotaError: st.RequestsAfterFirstQuotaError, QuotaErrors: st.QuotaErrors, InFlightBound: inFlightBound}
	if t, err := time.Parse(time.RFC3339Nano, st.FirstQuotaErrorAt); err == nil {
		f.FirstQuotaError = t.Sub(w.first).Seconds()
	}
	rest := w.samples[1:2]
	f.Window = poolWindow(rest, w.first, w.failedAt, afterLastAdmit(rest, w.plan.maxCut), w.plan.maxCut)
	return f
}

// phases is pool-tiers' figures; the last account is the overflow.
func (w *poolWatch) phases(accts []PoolAccountResult) []TierPhase {
	overflow := len(w.names) - 1
	share := func(ok []int) float64 {
		total := 0
		for _, n := range ok {
			total += n
		}
		return ratio(float64(ok[overflow]), float64(total))
	}
	if w.phaseBAt.IsZero() {
		return nil
	}
	a := TierPhase{Name: "A", Tasks: w.plan.phaseA, Offered: PoolPhaseALoad, OK: w.okAtPhaseB,
		To: w.phaseBAt.Sub(w.first).Seconds()}
	a.OverflowShare = share(a.OK)
	b := TierPhase{Name: "B", Tasks: w.plan.phaseB, From: a.To}
	for i, acc := range accts {
		b.OK = append(b.OK, acc.OK-w.okAtPhaseB[i])
	}
	b.OverflowShare = share(b.OK)
	primaries := w.samples[:overflow]
	pw := poolWindow(primaries, w.first, w.phaseBAt, afterLastAdmit(primaries, w.plan.maxCut), w.plan.maxCut)
	b.Primaries, b.To = &pw, lastAdmit(w.samples).Sub(w.first).Seconds()
	return []TierPhase{a, b}
}

// poolServed counts, from the results of queue, the tasks each account
// served, the retries spent and the results naming no account.
func (e *runEnv) poolServed(ctx context.Context, queue string, pr *PoolResult) error {
	insp := asynq.NewInspector(e.aopt)
	defer insp.Close()
	index := map[string]int{}
	for i, a := range pr.Accounts {
		index[queue+"-"+a.Name] = i
	}
	err := tasks.ListResults(ctx, insp, queue, func(res tasks.Result) error {
		if i, ok := index[res.Account]; ok {
			pr.Accounts[i].Served++
		} else {
			pr.Unattributed++
		}
		if res.Attempts > 1 {
			pr.RetriesSpent++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bench: list results: %w", err)
	}
	return nil
}

// summary is the one-line figure of a pool cell for the progress output.
func (pr *PoolResult) summary() string {
	switch {
	case pr.Window != nil:
		return fmt.Sprintf("combined utilisation after warm-up %.3f (%s), 429s %s", pr.Window.Utilisation, pr.Window.Binding, pct(pr.Window.Throttled))
	case pr.Failover != nil:
		f := pr.Failover
		return fmt.Sprintf("remaining account's utilisation %.3f (%s), %d requests after the first quota error (bound %d)",
			f.Window.Utilisation, f.Window.Binding, f.RequestsAfterFirstQuotaError, f.InFlightBound)
	case len(pr.Phases) == 2:
		return fmt.Sprintf("overflow share phase A %s, phase B %s", pct(pr.Phases[0].OverflowShare), pct(pr.Phases[1].OverflowShare))
	}
	return "no figures"
}

// writePool writes one block per pool cell: metric, value and the bar.
func (r *Report) writePool(w io.Writer) error {
	var cells []ScenarioResult
	for _, s := range r.Scenarios {
		if s.Pool != nil {
			cells = append(cells, s)
		}
	}
	if len(cells) == 0 {
		return nil
	}
	fmt.Fprintf(w, "pools — promptq only (the naive baseline has no notion of a pool); figures from the fake's own accounting,\n"+
		"utilisation after the warm-up (%s) with each account's window cut to its admissions; provider: the matrix base\n"+
		"(chars charge, prose prompts, 300ms ±100ms, retry-after in whole seconds) changed by the words after a cell's base name\n"+
		"(each cell's line says which), limits learned from headers\n\n", r.Warmup)
	for _, s := range cells {
		fmt.Fprintln(w, poolHead(s))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  metric\tvalue\tbar\t")
		for _, row := range poolRows(s) {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t\n", row[0], row[1], row[2])
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	return nil
}

// poolHead describes a pool cell's load and accounts.
func poolHead(s ScenarioResult) string {
	var accts []string
	for _, a := range s.Pool.Accounts {
		d := fmt.Sprintf("%s t%d %s/%s", a.Name, a.Tier, limitText(a.RPM), limitText(a.TPM))
		if a.Latency > 0 {
			d += " " + a.Latency.String()
		}
		accts = append(accts, d)
	}
	provider := ""
	if s.Cell != nil {
		provider = "; " + strings.Join(append([]string{string(s.Cell.Prompts) + " prompts"}, providerText(s.Cell)...), ", ")
	}
	return fmt.Sprintf("%s (K=%d×%d, burst %s, %d tasks of %.0f tokens on average; %s%s)", s.Name, s.Workers, s.Promptq.Concurrency,
		s.Burst, s.Tasks, s.Pool.MeanTaskCost, strings.Join(accts, ", "), provider)
}

// poolRows are a pool cell's rows: metric, value, bar.
func poolRows(s ScenarioResult) [][3]string {
	p, r := s.Pool, s.Promptq
	var rows [][3]string
	add := func(metric, value, bar string) { rows = append(rows, [3]string{metric, value, bar}) }
	if w := p.Window; w != nil {
		add(fmt.Sprintf("combined utilisation %.0f-%.0fs (%s)", w.From, w.To, w.Binding), f3(w.Utilisation), "≥ 0.97")
		add("  requests / tokens", f3(w.RequestUtilisation)+" / "+f3(w.TokenUtilisation), "")
		add("429 share after warm-up", fmt.Sprintf("%s (%d of %d)", pct(w.Throttled), w.RateLimited, w.Requests), "≤ 0.5%")
	}
	if f := p.Failover; f != nil {
		add("failover", fmt.Sprintf("%s out of quota at %.1fs after %d answers; first quota 429 at %.1fs", f.Account, f.At, f.AnsweredBefore, f.FirstQuotaError), "")
		add("requests to it after its 1st quota 429", fmt.Sprintf("%d (in flight then %d)", f.RequestsAfterFirstQuotaError, f.InFlightAtFirstQuotaError),
			fmt.Sprintf("≤ %d (workers × concurrency)", f.InFlightBound))
		add(fmt.Sprintf("%s's utilisation %.0f-%.0fs (%s)", f.Remaining, f.Window.From, f.Window.To, f.Window.Binding), f3(f.Window.Utilisation), "≥ 0.95")
		add("  its 429 share", fmt.Sprintf("%s (%d of %d)", pct(f.Window.Throttled), f.Window.RateLimited, f.Window.Requests), "")
	}
	for _, ph := range p.Phases {
		what := "backlog"
		if ph.Offered > 0 {
			what = fmt.Sprintf("%.0f%% of the primaries' limit", 100*ph.Offered)
		}
		add(fmt.Sprintf("phase %s: %d tasks, %s (%.0f-%.0fs)", ph.Name, ph.Tasks, what, ph.From, ph.To), "answers "+joinInts(ph.OK, " / "), "")
		bar := "≈ 0"
		if ph.Offered == 0 {
			bar = "> 0"
		}
		add("  overflow's share", pct(ph.OverflowShare), bar)
		if pw := ph.Primaries; pw != nil {
			add(fmt.Sprintf("  primaries' utilisation (%s)", pw.Binding), f3(pw.Utilisation), "")
		}
	}
	var shares []string
	for _, a := range p.Accounts {
		shares = append(shares, fmt.Sprintf("%s %s", a.Name, pct(a.Share)))
	}
	add("share of answers", strings.Join(shares, ", "), "")
	add("429 share (whole run)", fmt.Sprintf("%s (%d of %d)", pct(r.Throttled), r.RateLimited, r.Requests), "")
	add("lost / failed (archived) / unfinished", fmt.Sprintf("%d / %d / %d", r.Lost, r.Archived, r.Unfinished), "0 / 0 / 0")
	add("duplicate calls / dup OK / retries spent", fmt.Sprintf("%d / %d / %d", r.CallsAfterAnswered, r.DuplicateOK, p.RetriesSpent), "0 / 0 / 0")
	add("results naming no account", fmt.Sprint(p.Unattributed), "0")
	add("promptq redis cmds sent/task", f2(r.SentPerTask[OwnerPromptq]), "")
	add("wall (s)", f2(r.Wall), "")
	return rows
}

func joinInts(xs []int, sep string) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, sep)
}
