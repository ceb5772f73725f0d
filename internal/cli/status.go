package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/config"
	"github.com/promptq/promptq/internal/status"
	"github.com/promptq/promptq/internal/worker"
	"github.com/promptq/promptq/quota"
)

// statusReport is `promptq status --json`. It lives in internal/status,
// shared with GET /v1/status of `promptq serve`.
type statusReport = status.Report

func runStatus(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var (
		c       common
		asJSON  bool
		window  time.Duration
		assumed float64
	)
	f := config.New("status", "Show queue counts, throughput and ETA, pause state and quota headroom of every account (or --account).", stdout)
	c.register(f, true)
	f.Bool(&asJSON, "json", "PROMPTQ_JSON", false, "print JSON")
	f.Duration(&window, "rate-window", "PROMPTQ_RATE_WINDOW", 5*time.Minute, "completions this recent count towards a queue's observed rate")
	f.Float(&assumed, "assumed-rate", "PROMPTQ_ASSUMED_RATE", 0, "completion rate (tasks/s) assumed for the ETA before any is observed (0 = no ETA until measured)")
	if err := f.Parse(args); err != nil {
		return err
	}
	rdb, insp, done, err := c.inspect(ctx)
	if err != nil {
		return err
	}
	defer done()
	if window <= 0 || assumed < 0 {
		return errors.New("--rate-window / PROMPTQ_RATE_WINDOW must be positive and --assumed-rate / PROMPTQ_ASSUMED_RATE >= 0")
	}
	rep, err := collectStatus(ctx, rdb, insp, c.account, status.Options{RateWindow: window, AssumedRate: assumed})
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printStatus(stdout, rep)
	return nil
}

func collectStatus(ctx context.Context, rdb redis.UniversalClient, insp *asynq.Inspector, account string, o status.Options) (*statusReport, error) {
	accts, err := accountsFor(ctx, rdb, account)
	if err != nil {
		return nil, err
	}
	return status.CollectWith(ctx, rdb, insp, accts, o)
}

func printStatus(w io.Writer, rep *statusReport) {
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tPENDING\tACTIVE\tSCHEDULED\tRETRY\tARCHIVED\tCOMPLETED\tPAUSED\tRATE/S\tETA")
	qs := make([]string, 0, len(rep.Queues))
	for q := range rep.Queues {
		qs = append(qs, q)
	}
	sort.Strings(qs)
	for _, q := range qs {
		s := rep.Queues[q]
		rate, eta := "-", "-"
		if th := s.Throughput; th != nil && th.PerSecond > 0 {
			rate = fmt.Sprintf("%.2f", th.PerSecond)
			if th.Source == "assumed" {
				rate += " (assumed)"
			}
			if th.ETAMs != nil {
				eta = (time.Duration(*th.ETAMs) * time.Millisecond).Round(time.Second).String()
			}
		}
		if th := s.Throughput; th != nil && th.Paused {
			eta += " (paused)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%v\t%s\t%s\n", q, s.Pending, s.Active, s.Scheduled, s.Retry, s.Archived, s.Completed, s.Paused, rate, eta)
	}
	if len(qs) == 0 {
		fmt.Fprintln(tw, "(no queues yet)")
	}
	tw.Flush()
	for _, q := range qs {
		th := rep.Queues[q].Throughput
		switch {
		case th == nil || !th.Paused:
		case th.PausedUntil == nil:
			fmt.Fprintf(w, "queue %s: paused until resumed (%s): no ETA\n", q, th.PauseReason)
		default:
			fmt.Fprintf(w, "queue %s: paused until %s (%s); the ETA includes the pause\n", q, *th.PausedUntil, th.PauseReason)
		}
	}
	printPools(w, rep.Pools)
	as := make([]string, 0, len(rep.Accounts))
	for a := range rep.Accounts {
		as = append(as, a)
	}
	sort.Strings(as)
	for _, a := range as {
		printAccount(w, a, rep.Accounts[a])
		printPoolLines(w, a, rep.Pools)
		if s, ok := rep.Snapshots[a]; ok {
			printSnapshot(w, s)
		}
	}
}

// printPools prints one table per pool: its accounts by tier with their
// state, share of the pool's requests today, today's counts and headroom.
func printPools(w io.Writer, pools map[string]status.Pool) {
	for _, name := range slices.Sorted(maps.Keys(pools)) {
		p := pools[name]
		fmt.Fprintf(w, "\npool %s: %d requests, %d tokens today (%s); SHARE is the account's part of the pool's requests today\n",
			name, p.RequestsToday, p.TokensToday, p.Date)
		tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
		fmt.Fprintln(tw, "  TIER\tACCOUNT\tSTATE\tSHARE TODAY\tREQUESTS TODAY\tTOKENS TODAY\tREQUESTS AVAILABLE\tTOKENS AVAILABLE")
		for _, a := range p.Accounts {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", a.Tier, a.Account, poolState(a), shareStr(a.ShareToday),
				a.RequestsToday, a.TokensToday, headroomStr(a.Requests), headroomStr(a.Tokens))
		}
		tw.Flush()
	}
}

// printPoolLines prints account a's place in each pool that holds it.
func printPoolLines(w io.Writer, a string, pools map[string]status.Pool) {
	for _, name := range slices.Sorted(maps.Keys(pools)) {
		p := pools[name]
		for _, pa := range p.Accounts {
			if pa.Account != a {
				continue
			}
			fmt.Fprintf(w, "  pool %s, tier %d: %s; %s of the pool's requests today (%d of %d)\n",
				name, pa.Tier, poolState(pa), shareStr(pa.ShareToday), pa.RequestsToday, p.RequestsToday)
		}
	}
}

// poolState is a pool account's state: "active", "paused until T (reason,
// kind)" or "paused for models [m ...]".
func poolState(a status.PoolAccount) string {
	var parts []string
	if p := a.Pause; p.Paused {
		until := "resumed"
		if p.Until != nil {
			until = *p.Until
		}
		parts = append(parts, fmt.Sprintf("paused until %s (%s, %s)", until, p.Reason, p.Kind))
	}
	if len(a.PausedModels) > 0 {
		ms := make([]string, 0, len(a.PausedModels))
		for _, m := range a.PausedModels {
			ms = append(ms, m.Model)
		}
		parts = append(parts, "paused for models ["+strings.Join(ms, " ")+"]")
	}
	if len(parts) == 0 {
		return status.StateActive
	}
	return strings.Join(parts, "; ")
}

// shareStr is a share of today's requests as a percentage, "-" while the
// pool has served nothing today.
func shareStr(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100**v)
}

// headroomStr is a bucket's headroom, "available/limit", or "unknown"
// before its limit is known.
func headroomStr(b status.Bucket) string {
	if b.Limit == nil || b.Available == nil {
		return "unknown"
	}
	return fmt.Sprintf("%.0f/%d", *b.Available, *b.Limit)
}

// printAccount prints an account's pause state.
func printAccount(w io.Writer, a string, p status.Pause) {
	fmt.Fprintf(w, "\naccount %s: ", a)
	switch {
	case !p.Paused:
		fmt.Fprintln(w, "running")
	case p.Until == nil:
		fmt.Fprintf(w, "PAUSED until resumed (kind %s, reason %q, set by %s)\n", p.Kind, p.Reason, p.SetBy)
	default:
		fmt.Fprintf(w, "PAUSED until %s (%s left; kind %s, reason %q, set by %s)\n", *p.Until,
			(time.Duration(*p.RemainingMs) * time.Millisecond).Round(time.Second).String(), p.Kind, p.Reason, p.SetBy)
	}
	if len(p.SharedQueues) > 0 {
		fmt.Fprintf(w, "  queues %s keep running for other active accounts: the pause record alone holds this account's workers\n",
			strings.Join(p.SharedQueues, ", "))
	}
}

// printSnapshot prints an account's quota: limits, headroom, today's
// budget, tenants, calibration.
func printSnapshot(w io.Writer, s quota.Snapshot) {
	fmt.Fprintf(w, "  requests: limit %s, available %.0f, full in %v (%s)\n", limitStr(s.Requests.Limit), s.Requests.Available, s.Requests.ResetIn.Round(time.Millisecond), s.Requests.Source)
	fmt.Fprintf(w, "  tokens:   limit %s, available %.0f, full in %v (%s)\n", limitStr(s.Tokens.Limit), s.Tokens.Available, s.Tokens.ResetIn.Round(time.Millisecond), s.Tokens.Source)
	fmt.Fprintf(w, "  in flight: %d, 429s seen: %d\n", s.InFlight, s.Throttled)
	if s.RampFraction < 1 {
		fmt.Fprintf(w, "  slow_down ramp: admitting %.0f%% of the limits, growing back to 100%%\n", 100*s.RampFraction)
	}
	d := s.Daily
	fmt.Fprintf(w, "  today (%s): %d requests of %s, %d tokens of %s, pauses at %.0f%%, resets %s\n", d.Date,
		d.Requests, limitStr(d.RequestLimit), d.Tokens, limitStr(d.TokenLimit), 100*d.Threshold, d.ResetAt.Format(time.RFC3339))
	if len(s.Tenants) > 0 {
		fmt.Fprintln(w, "  tenants:")
		printTenants(w, "    ", s.Tenants)
	}
	if len(s.Fair) > 1 {
		fmt.Fprintln(w, "  fair share between tenants with pending work:")
		printFair(w, "    ", s.Fair)
	}
	if s.Probing {
		fmt.Fprintf(w, "  cold-start probe: admissions wait for the first response (%d in flight; a worker logs a warning after %v)\n", s.InFlight, worker.StallAfter)
	}
	printCalibration(w, s.Calibration)
	if s.EstimateSamples > 0 {
		fmt.Fprintf(w, "  input-token estimate: %d samples, mean abs error %.1f tokens, bias %+.1f%%\n", s.EstimateSamples, s.EstimateMeanAbsErr, 100*s.EstimateBias)
	}
}

func limitStr(v int64) string {
	if v <= 0 {
		return "unknown"
	}
	return fmt.Sprint(v)
}

// printCalibration shows what the cost calibration learned (quota.Calibration).
func printCalibration(w io.Writer, c quota.Calibration) {
	switch {
	case c.Basis != "":
		fmt.Fprintf(w, "  cost calibration: %.3f x %s basis, from %s (%d samples in the ring, %d in all; spread %.1f%%)\n",
			c.Factor, c.Basis, c.Source, c.Ring, c.Samples, 100*c.Spread)
	default:
		fmt.Fprintf(w, "  cost calibration: nothing learned yet (%d samples): reserving the larger of characters/4 and the tokenizer count\n", c.Samples)
	}
	if c.Bad > 0 || c.Missing > 0 {
		fmt.Fprintf(w, "  accounting signals refused: %d absurd, %d responses without remaining tokens\n", c.Bad, c.Missing)
	}
}
