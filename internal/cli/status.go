package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/config"
	"github.com/promptq/promptq/internal/status"
	"github.com/promptq/promptq/internal/worker"
	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/quota"
	"github.com/promptq/promptq/tasks"
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
	as := make([]string, 0, len(rep.Accounts))
	for a := range rep.Accounts {
		as = append(as, a)
	}
	sort.Strings(as)
	for _, a := range as {
		p := rep.Accounts[a]
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
		if s, ok := rep.Snapshots[a]; ok {
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
	}
}

func limitStr(v int64) string {
	if v <= 0 {
		return "unknown"
	}
	return fmt.Sprint(v)
}

func runResults(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var (
		c       common
		queue   string
		out     string
		wait    bool
		ids     string
		timeout time.Duration
	)
	f := config.New("results", "Export finished tasks as JSONL, one line each:\n"+
		`  {"id","task_id","queue","status":"completed"|"archived","output_text","usage":{...},"error","attempts",...}`, stdout)
	c.register(f, false)
	f.String(&queue, "queue", "PROMPTQ_QUEUE", "", "only this queue (default: every queue)")
	f.String(&out, "out", "PROMPTQ_OUT", "", "write to this file instead of standard output")
	f.Bool(&wait, "wait", "PROMPTQ_WAIT", false, "first wait until the queue (or --ids) has no unfinished task, showing progress")
	f.String(&ids, "ids", "PROMPTQ_IDS", "", "with --wait: comma-separated task ids to wait for (default: the whole queue)")
	f.Duration(&timeout, "wait-timeout", "PROMPTQ_WAIT_TIMEOUT", 0, "with --wait: give up after this long (0 = never)")
	if err := f.Parse(args); err != nil {
		return err
	}
	rdb, insp, done, err := c.inspect(ctx)
	if err != nil {
		return err
	}
	defer done()
	w := stdout
	if out != "" {
		fh, err := os.Create(out)
		if err != nil {
			return fmt.Errorf("results: %v", err)
		}
		defer fh.Close()
		w = fh
	}
	queues := []string{queue}
	if queue == "" {
		if queues, err = insp.Queues(); err != nil {
			return err
		}
		sort.Strings(queues)
	}
	if wait {
		wctx := ctx
		if timeout > 0 {
			var cancel context.CancelFunc
			wctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		note := func() string {
			accts, err := pausegate.Accounts(wctx, rdb)
			if err != nil {
				return ""
			}
			n, _ := status.PauseNote(wctx, rdb, accts, queues)
			return n
		}
		if err := waitFinished(wctx, insp, queues, splitIDs(ids), note, stderr); err != nil {
			return fmt.Errorf("results --wait: %w", err)
		}
	}
	enc := json.NewEncoder(w)
	n := 0
	for _, q := range queues {
		err := tasks.ListResults(ctx, insp, q, func(r tasks.Result) error { n++; return enc.Encode(r) })
		if err != nil {
			return fmt.Errorf("results of queue %s: %w", q, err)
		}
	}
	if out != "" {
		fmt.Fprintf(stderr, "results: %d written to %s\n", n, out)
	}
	return nil
}

func runPause(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var (
		c      common
		forD   time.Duration
		until  string
		reason string
	)
	f := config.New("pause", "Pause an account: asynq stops handing its tasks to any worker and no worker sends a new request.\n"+
		"Requests in flight finish. Without --for or --until the pause lasts until 'promptq resume'.\n"+
		"Without --account every account that has run a worker is paused.", stdout)
	c.register(f, true)
	f.Duration(&forD, "for", "PAUSE_FOR", 0, "pause for this long (e.g. 30m)")
	f.String(&until, "until", "PAUSE_UNTIL", "", "pause until this RFC 3339 time")
	f.String(&reason, "reason", "PAUSE_REASON", "manual pause", "reason shown in status")
	if err := f.Parse(args); err != nil {
		return err
	}
	var end time.Time
	switch {
	case forD != 0 && until != "":
		return errors.New("pause: give --for or --until, not both")
	case forD < 0:
		return fmt.Errorf("pause: --for must be positive, got %v", forD)
	case forD > 0:
		end = time.Now().Add(forD)
	case until != "":
		t, err := time.Parse(time.RFC3339, until)
		if err != nil {
			return fmt.Errorf("pause: --until %q is not an RFC 3339 time (e.g. 2026-11-27T15:04:05Z)", until)
		}
		if !t.After(time.Now()) {
			return fmt.Errorf("pause: --until %s is in the past", until)
		}
		end = t
	}
	rdb, insp, done, err := c.inspect(ctx)
	if err != nil {
		return err
	}
	defer done()
	accts, err := accountsFor(ctx, rdb, c.account)
	if err != nil {
		return err
	}
	if len(accts) == 0 {
		return errors.New("pause: no account known yet (no worker has run); pass --account")
	}
	gate, err := pausegate.New(rdb, pausegate.Config{Queues: pausegate.AsynqQueues(insp), SetBy: "admin", ShortPause: time.Nanosecond})
	if err != nil {
		return err
	}
	for _, a := range accts {
		rec, err := gate.Pause(ctx, a, pausegate.PauseRequest{Until: end, Reason: reason, Kind: "manual"})
		if err != nil {
			return fmt.Errorf("pause %s: %w", a, err)
		}
		if rec.Until.IsZero() {
			fmt.Fprintf(stdout, "paused %s until resumed\n", a)
		} else {
			fmt.Fprintf(stdout, "paused %s until %s\n", a, rec.Until.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

func runResume(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var c common
	f := config.New("resume", "Resume paused accounts: clears the pause record and unpauses their queues.\n"+
		"Without --account every paused account is resumed, and each is named.", stdout)
	c.register(f, true)
	if err := f.Parse(args); err != nil {
		return err
	}
	rdb, insp, done, err := c.inspect(ctx)
	if err != nil {
		return err
	}
	defer done()
	gate, err := pausegate.New(rdb, pausegate.Config{Queues: pausegate.AsynqQueues(insp), SetBy: "admin"})
	if err != nil {
		return err
	}
	var resumed []string
	if c.account != "" {
		ok, err := gate.Resume(ctx, c.account)
		if err != nil {
			return err
		}
		if ok {
			resumed = []string{c.account}
		}
	} else if resumed, err = gate.ResumeAll(ctx); err != nil {
		return err
	}
	// Queues paused by hand in asynqmon or by an older run are resumed too.
	names, _ := insp.Queues()
	for _, q := range names {
		if info, err := insp.GetQueueInfo(q); err == nil && info.Paused && c.account == "" {
			if err := insp.UnpauseQueue(q); err == nil {
				resumed = append(resumed, "queue "+q)
			}
		}
	}
	if len(resumed) == 0 {
		fmt.Fprintln(stdout, "nothing was paused")
		return nil
	}
	fmt.Fprintf(stdout, "resumed: %s\n", strings.Join(resumed, ", "))
	return nil
}

func splitIDs(s string) []string {
	var out []string
	for _, id := range strings.Split(s, ",") {
		if id = strings.TrimSpace(id); id != "" {
			out = append(out, id)
		}
	}
	return out
}

// waitFinished blocks until every given id (or every task of queues) is
// completed or archived, printing a progress bar to w, with what holds the
// queues (pauseNote: "paused until T (reason)", "" when nothing does).
func waitFinished(ctx context.Context, insp *asynq.Inspector, queues []string, ids []string, pauseNote func() string, w io.Writer) error {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	last := ""
	unknown := map[string]bool{}
	for {
		done, total := 0, 0
		if len(ids) > 0 {
			total = len(ids)
			for _, id := range ids {
				found := false
				for _, q := range queues {
					_, err := tasks.GetResult(ctx, insp, q, id)
					if err == nil {
						done++
						found = true
						break
					}
					found = found || !(errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound))
				}
				if !found {
					// No queue knows it (a typo, or past retention): waiting
					// would never end.
					if !unknown[id] {
						fmt.Fprintf(w, "results --wait: task %q is not in any queue; not waiting for it\n", id)
						unknown[id] = true
					}
					done++
				}
			}
		} else {
			for _, q := range queues {
				info, err := insp.GetQueueInfo(q)
				if err != nil {
					continue
				}
				done += info.Completed + info.Archived
				total += info.Completed + info.Archived + info.Pending + info.Active + info.Scheduled + info.Retry
			}
		}
		line := progressBar(done, total)
		if done < total {
			if n := pauseNote(); n != "" {
				line += ", " + n
			}
		}
		if line != last {
			fmt.Fprintln(w, line)
			last = line
		}
		if done >= total {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d finished: %w", done, total, ctx.Err())
		case <-t.C:
		}
	}
}

func progressBar(done, total int) string {
	const width = 30
	filled := width
	if total > 0 {
		filled = width * done / total
	}
	return fmt.Sprintf("[%s%s] %d/%d finished", strings.Repeat("#", filled), strings.Repeat(".", width-filled), done, total)
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
