package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/promptq/promptq/internal/fakeopenai"
	"github.com/promptq/promptq/tasks"
)

// measured is what one run leaves behind once its workers have stopped.
type measured struct {
	id          string               // the run's queue and account
	w           *watch               // the run's watch, done waiting
	enqueued    map[string]time.Time // when each task was enqueued, by payload ID
	cmds        commandStats         // Redis commands executed (redisMeter)
	sent        map[string]map[string]int64
	wall        time.Duration
	stderr      string // the tail of the workers' output
	concurrency int    // each worker's concurrency
}

// figures computes one run's result from what it left behind: the fake's
// counters and samples, the Redis commands, and the tasks' results.
func (e *runEnv) figures(ctx context.Context, s Scenario, l limits, spec runSpec, m measured) (RunResult, error) {
	w := m.w
	st := w.fake.Stats()
	r := RunResult{Mode: spec.label, Tasks: l.tasks, Requests: st.Requests, OK: st.OK, RateLimited: st.RateLimited,
		QuotaErrors: st.QuotaErrors, SlowDowns: st.SlowDowns, TokensCharged: st.TokensCharged, MaxInFlight: st.MaxInFlight,
		Wall: m.wall.Seconds(), WorkerErrors: m.stderr, Outage: w.out, Concurrency: m.concurrency,
		CallsAfterAnswered: st.CallsAfterAnswered, Cut: w.cut}
	if s.Bound != BoundNone {
		r.Window = measureWindow(w.samples, w.first, w.end, w.halved, e.cfg.Warmup, s.Bound == BoundTPM)
	}
	if r.Requests > 0 {
		r.Throttled = float64(r.RateLimited) / float64(r.Requests)
	}
	e.utilisation(&r, st, l)

	r.setCommands(m.cmds, m.sent, w.zcards)

	finished, err := e.collect(ctx, &r, m.id, m.enqueued, w.cut)
	if err != nil {
		return r, err
	}
	if w.slow != nil {
		r.SlowDown = w.slow.trace(w.start)
	}
	if spec.tenants {
		r.Tenants = tenantResults(m.id, w.start, finished, spec.budgets)
	}
	if spec.adaptive {
		if r.AdaptiveLimit, err = e.adaptiveLimit(ctx, m.id); err != nil {
			return r, err
		}
	}
	for _, n := range st.ByTask {
		if n > 1 {
			r.DuplicateTasks++
		}
	}
	r.DuplicateOK = max(0, r.OK-r.Completed)
	if r.Outage != nil {
		r.Outage.InFlightAtFirst429 = st.InFlightAtFirstQuotaError
		r.Outage.RequestsAfterFirst429 = st.RequestsAfterFirstQuotaError
	}
	return r, nil
}

// utilisation fills the utilisation figures from the fake's counters: for
// each limited bucket, (work admitted - burst capacity) / (elapsed * rate),
// where elapsed runs from the first request to the admission of the last
// answered one. The binding limit is the more utilised one.
func (e *runEnv) utilisation(r *RunResult, st fakeopenai.Stats, l limits) {
	first, err1 := time.Parse(time.RFC3339Nano, st.FirstRequestAt)
	last, err2 := time.Parse(time.RFC3339Nano, st.LastOKAt)
	if err1 != nil || err2 != nil {
		return
	}
	el := last.Sub(first) - e.cfg.Latency
	if el <= 0 {
		return
	}
	r.Elapsed = el.Seconds()
	util := func(limit, work int, minCap float64) float64 {
		if limit == 0 {
			return 0
		}
		capacity := max(float64(limit)*l.burst.Seconds()/60, minCap)
		return (float64(work) - capacity) / (r.Elapsed * float64(limit) / 60)
	}
	r.RequestUtilisation = util(l.rpm, st.OK, 1)
	r.TokenUtilisation = util(l.tpm, st.TokensCharged, 0)
	switch {
	case l.rpm == 0 && l.tpm == 0:
	case l.tpm == 0 || (l.rpm != 0 && r.RequestUtilisation >= r.TokenUtilisation):
		r.Utilisation, r.Binding = r.RequestUtilisation, "requests"
	default:
		r.Utilisation, r.Binding = r.TokenUtilisation, "tokens"
	}
}

// collect counts finished tasks and computes latencies from their results.
// It returns when each completed task finished, by payload ID.
func (e *runEnv) collect(ctx context.Context, r *RunResult, queue string, enqueued map[string]time.Time, cut bool) (map[string]time.Time, error) {
	insp := asynq.NewInspector(e.aopt)
	defer insp.Close()
	if cut {
		// Stopped before every task finished: the ones still queued are
		// unfinished, not lost.
		qi, err := insp.GetQueueInfo(queue)
		if err != nil {
			return nil, fmt.Errorf("bench: queue info: %w", err)
		}
		r.Unfinished = qi.Pending + qi.Active + qi.Scheduled + qi.Retry + qi.Aggregating
	}
	var handler, e2e []float64
	finished := map[string]time.Time{}
	err := tasks.ListResults(ctx, insp, queue, func(res tasks.Result) error {
		switch res.Status {
		case tasks.StatusCompleted:
			r.Completed++
		case tasks.StatusArchived:
			r.Archived++
		}
		if res.StartedAt != nil && res.FinishedAt != nil && res.Status == tasks.StatusCompleted {
			handler = append(handler, ms(res.FinishedAt.Sub(*res.StartedAt)))
			finished[res.ID] = *res.FinishedAt
			if t, ok := enqueued[res.ID]; ok {
				e2e = append(e2e, ms(res.FinishedAt.Sub(t)))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bench: list results: %w", err)
	}
	r.Lost = r.Tasks - r.Completed - r.Archived - r.Unfinished
	r.HandlerP50, r.HandlerP99 = percentile(handler, 50), percentile(handler, 99)
	r.E2EP50, r.E2EP99 = percentile(e2e, 50), percentile(e2e, 99)
	return finished, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
