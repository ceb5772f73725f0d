package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/fakeopenai"
	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/pausegate"
)

// watch follows one run until every task is finished: it polls the
// queue's completed and archived counts, and in an outage scenario injects
// the outage, notes the pause, and acts as the operator once the provider
// is back (manual resume, then run the parked retries).
type watch struct {
	env            *runEnv
	fake           *fakeopenai.Server
	queue, account string
	tasks          int
	start          time.Time
	mode           string
	outage         time.Duration
	out            *Outage
	slow           *slowWatch // slow_down injection, or nil
	zcards         int64      // ZCARD commands the watch sent, left out of the figures

	// cell is the matrix cell, or nil. In a cell run the watch halves the
	// limits (Cell.Halve) and stops waiting Config.Drain after the end of
	// the cell duration (cut).
	cell    *Cell
	samples []fakeopenai.Sample // the fake's accounting at every poll
	first   time.Time           // first request seen by the fake
	end     time.Time           // end of the cell duration (cells only)
	halved  time.Time
	cut     bool
}

// sample records the fake's accounting and, in a cell run, halves the
// limits when it is time. It reports whether a cell run should stop
// waiting (Config.Drain after the end of the cell duration).
func (w *watch) sample() (stop bool) {
	sm := w.fake.Sample()
	w.samples = append(w.samples, sm)
	if w.first.IsZero() && sm.Requests > 0 {
		w.first = sm.At
		if w.cell != nil {
			w.end = w.first.Add(w.env.cfg.Warmup + w.env.cfg.CellDuration)
		}
	}
	if w.cell == nil || w.first.IsZero() {
		return false
	}
	halveAt := w.first.Add(w.env.cfg.Warmup + time.Duration(HalveAt*float64(w.env.cfg.CellDuration)))
	if w.cell.Halve && w.halved.IsZero() && !sm.At.Before(halveAt) {
		_ = w.fake.SetLimits(fakeopenai.Limits{RPM: (sm.RPM + 1) / 2, TPM: (sm.TPM + 1) / 2})
		w.halved = time.Now()
	}
	return sm.At.After(w.end.Add(w.env.cfg.Drain))
}

// Phases of an outage scenario.
const (
	phaseBefore  = iota // waiting for 30% of the tasks
	phaseOutage         // provider answers insufficient_quota
	phaseResumed        // operator resumed; waiting for the first answer
	phaseAfter
)

func (w *watch) note(what string) {
	w.out.Timeline = append(w.out.Timeline, Event{At: time.Since(w.start).Seconds(), What: what})
}

// wait polls every 20 ms until every task is finished, the run's context
// ends, or a cell run is cut.
func (w *watch) wait(ctx context.Context) error {
	op, err := w.newOperator()
	if err != nil {
		return err
	}
	if op != nil {
		defer op.insp.Close()
	}
	// Finished tasks are counted with two ZCARDs on asynq's sorted sets, not
	// with Inspector.GetQueueInfo: that one runs a script of a dozen reads
	// (an HGET only while tasks are pending) plus a memory-usage sampling
	// script, every 20 ms, and the figures could no longer leave the bench's
	// own commands out exactly (see w.zcards).
	completed, archived := keys.AsynqCompleted(w.queue), keys.AsynqArchived(w.queue)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("run did not finish: %w", ctx.Err())
		case <-tick.C:
		}
		if w.slow != nil {
			w.slow.observe(w.fake, w.tasks)
		}
		if w.sample() {
			w.cut = true
			return nil
		}
		if op != nil {
			if err := w.outageStep(ctx, op); err != nil {
				return err
			}
		}
		n, err := w.finished(ctx, completed, archived)
		if err != nil {
			return err
		}
		if n >= w.tasks {
			if w.out != nil {
				w.note(fmt.Sprintf("all %d tasks finished", w.tasks))
			}
			return nil
		}
	}
}

// finished counts the queue's completed and archived tasks (two ZCARDs in
// one round trip, counted in w.zcards).
func (w *watch) finished(ctx context.Context, completed, archived string) (int, error) {
	return countFinished(ctx, w.env.rdb, completed, archived, &w.zcards)
}

// countFinished is the number of members of a queue's completed and archived
// sets: two ZCARDs in one round trip, added to *zcards so that the figures
// can leave the bench's own commands out.
func countFinished(ctx context.Context, rdb redis.Cmdable, completed, archived string, zcards *int64) (int, error) {
	var c, a *redis.IntCmd
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		c, a = p.ZCard(ctx, completed), p.ZCard(ctx, archived)
		return nil
	})
	*zcards += 2
	if err != nil {
		return 0, fmt.Errorf("poll queue: %w", err)
	}
	return int(c.Val() + a.Val()), nil
}

// operator is the watch acting as the operator of an outage scenario: the
// pause gate it checks and resumes, the inspector that runs the parked
// retries, and how far the outage has got.
type operator struct {
	gate       *pausegate.Gate
	insp       *asynq.Inspector
	phase      int
	okAtResume int  // the fake's OK count at the resume
	pauseSeen  bool // the account's pause has been noted
	first429   bool // the first insufficient_quota 429 has been noted
}

// newOperator returns the outage scenario's operator, or nil outside one.
// The caller closes its inspector.
func (w *watch) newOperator() (*operator, error) {
	if w.out == nil {
		return nil, nil
	}
	insp := asynq.NewInspector(w.env.aopt)
	gate, err := pausegate.New(w.env.rdb, pausegate.Config{Queues: insp, SetBy: "bench"})
	if err != nil {
		_ = insp.Close()
		return nil, err
	}
	return &operator{gate: gate, insp: insp, phase: phaseBefore}, nil
}

// outageStep moves an outage scenario on by one poll: inject the outage
// once 30% of the tasks are answered, follow it, then note the first
// answer after the resume.
func (w *watch) outageStep(ctx context.Context, op *operator) error {
	st := w.fake.Stats()
	switch op.phase {
	case phaseBefore:
		if st.OK >= w.tasks*3/10 {
			w.fake.SetMode(fakeopenai.ModeInsufficientQuota, w.outage)
			w.note(fmt.Sprintf("outage injected: insufficient_quota for %s (%d/%d answered)", w.outage, st.OK, w.tasks))
			op.phase = phaseOutage
		}
	case phaseOutage:
		return w.duringOutage(ctx, op, st)
	case phaseResumed:
		if st.OK > op.okAtResume {
			w.note("first answer after resume")
			op.phase = phaseAfter
		}
	}
	return nil
}

// duringOutage notes the first quota 429 and the account's pause, and once
// the provider is back acts as the operator: manual resume, then run the
// parked retries.
func (w *watch) duringOutage(ctx context.Context, op *operator, st fakeopenai.Stats) error {
	if !op.first429 && st.FirstQuotaErrorAt != "" {
		op.first429 = true
		if t, err := time.Parse(time.RFC3339Nano, st.FirstQuotaErrorAt); err == nil {
			w.out.Timeline = append(w.out.Timeline, Event{At: t.Sub(w.start).Seconds(),
				What: fmt.Sprintf("first insufficient_quota 429 (%d requests in flight)", st.InFlightAtFirstQuotaError)})
		}
	}
	if w.mode == ModePromptq && !op.pauseSeen {
		if rec, active, err := op.gate.Check(ctx, w.account); err == nil && active {
			op.pauseSeen = true
			w.note(fmt.Sprintf("account paused in Redis (kind %s, until +%.0fs)", rec.Kind, time.Until(rec.Until).Seconds()))
		}
	}
	if w.fake.Mode() != fakeopenai.ModeNormal {
		return nil
	}
	w.note(fmt.Sprintf("provider back to normal (%d requests reached it after the first quota 429)", st.RequestsAfterFirstQuotaError))
	resumed, err := op.gate.Resume(ctx, w.account)
	if err != nil {
		return fmt.Errorf("operator resume: %w", err)
	}
	n, err := op.insp.RunAllRetryTasks(w.queue)
	if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		return fmt.Errorf("operator run retries: %w", err)
	}
	w.out.RetriesRunAtResume = n
	w.note(fmt.Sprintf("operator: resume (was paused: %v), %d parked retries run now", resumed, n))
	op.okAtResume, op.phase = st.OK, phaseResumed
	return nil
}
