package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/promptq/promptq/internal/fakeopenai"
	"github.com/promptq/promptq/tasks"
)

// poolScenario runs pool cell s: promptq only (Promptq and Pool are set,
// Naive stays empty).
func (e *runEnv) poolScenario(ctx context.Context, s Scenario) (ScenarioResult, error) {
	p := e.cfg.poolPlan(s)
	s.Burst = p.burst
	sr := ScenarioResult{Scenario: s, RPM: e.cfg.PoolRPM, TPM: e.cfg.PoolTPM, Tasks: p.tasks}
	var err error
	sr.Promptq, sr.Pool, err = e.runPool(ctx, s, p)
	return sr, err
}

// runPool is the one run of a pool cell: a fresh multi-account fake, a pool
// file naming its accounts, PoolWorkers `promptq worker --pool` processes
// on one queue, the tasks (pool-tiers: in two phases), and the figures.
func (e *runEnv) runPool(ctx context.Context, s Scenario, p poolPlan) (RunResult, *PoolResult, error) {
	id := runID(s.Name, ModePromptq)
	fmt.Fprintf(e.cfg.Progress, "bench: %-16s %-7s %d tasks, %d workers, %d accounts ...\n", s.Name, ModePromptq, p.tasks, s.Workers, len(p.accounts))
	// A pool run is planned to last p.length; RunTimeout bounds the rest.
	ctx, cancel := context.WithTimeout(ctx, e.cfg.RunTimeout+p.length+e.cfg.Drain)
	defer cancel()

	base := s.Cell.fakeConfig(limits{rpm: e.cfg.PoolRPM, tpm: e.cfg.PoolTPM, burst: p.burst}, e.cfg.Seed)
	fake, err := fakeopenai.NewAccounts(base, p.fakeSpecs(id))
	if err != nil {
		return RunResult{}, nil, err
	}
	hs, addr, err := serveFake(fake)
	if err != nil {
		return RunResult{}, nil, err
	}
	defer hs.Close()
	dir, err := os.MkdirTemp("", "promptq-bench-pool-")
	if err != nil {
		return RunResult{}, nil, err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "pool.yaml")
	if err := os.WriteFile(file, p.poolFile(id, addr), 0o600); err != nil {
		return RunResult{}, nil, err
	}

	w := newPoolWatch(e, fake, s.base(), id, p)
	defer w.close()
	if s.base() != PoolCellTiers {
		if err := w.enqueue(ctx, p.payloads(id, "", 0, p.tasks, e.cfg.Seed)); err != nil {
			return RunResult{}, nil, err
		}
	}
	meter, err := e.startMeter(ctx)
	if err != nil {
		return RunResult{}, nil, err
	}
	start := time.Now()
	ws, err := e.startPoolWorkers(s.Workers, file, id, filepath.Join(dir, "spool"), fake.Names())
	if err != nil {
		_, _, _ = meter.stop(ctx, e.rdb)
		return RunResult{}, nil, err
	}
	defer ws.kill()
	w.start = start
	werr := w.wait(ctx)
	cmds, sent, err := meter.stop(context.WithoutCancel(ctx), e.rdb)
	if err != nil {
		return RunResult{}, nil, err
	}
	wall := time.Since(start)
	stderr := ws.stop()
	if werr != nil {
		return RunResult{}, nil, fmt.Errorf("bench: %s: %w\nworker stderr:\n%s", s.Name, werr, stderr)
	}
	r := w.totals()
	r.Wall, r.WorkerErrors, r.Concurrency, r.Cut = wall.Seconds(), stderr, e.cfg.Concurrency, w.cut
	r.setCommands(cmds, sent, w.zcards)
	if _, err := e.collect(context.WithoutCancel(ctx), &r, id, w.enqueued, w.cut); err != nil {
		return r, nil, err
	}
	if never := p.tasks - len(w.enqueued); never > 0 { // cut before phase B was enqueued
		r.Unfinished += never
		r.Lost -= never
	}
	r.DuplicateOK = max(0, r.OK-r.Completed)
	pr := w.result(e.cfg, s.Workers*e.cfg.Concurrency)
	if err := e.poolServed(context.WithoutCancel(ctx), id, pr); err != nil {
		return r, pr, err
	}
	fmt.Fprintf(e.cfg.Progress, "bench: %-16s %-7s done in %.1fs: %s, lost %d, unfinished %d\n",
		s.Name, ModePromptq, r.Wall, pr.summary(), r.Lost, r.Unfinished)
	return r, pr, nil
}

// startPoolWorkers starts k `promptq worker --pool file` processes on
// queue, with the keys of the pool's accounts (names, in file order) in
// their environment. Everything else is the worker's default (pause after
// insufficient_quota: 1h, so the failed account is not probed again
// during the run).
func (e *runEnv) startPoolWorkers(k int, file, queue, spool string, names []string) (*workers, error) {
	args := []string{"worker", "--redis", e.cfg.RedisURL, "--pool", file, "--queues", queue + "=1",
		"--concurrency", strconv.Itoa(e.cfg.Concurrency), "--spool-dir", spool,
		"--shutdown-timeout", "5s", "--log-format", "json"}
	env := []string{"LOG_LEVEL=warn"}
	for i, n := range names {
		env = append(env, keyEnv(i)+"="+keyOf(n))
	}
	return e.spawn(k, args, env)
}

// poolWatch follows a pool run until every task is finished: it samples
// each account's accounting, runs the cell's events (the failover, the
// phases) and polls the queue.
type poolWatch struct {
	env      *runEnv
	fake     *fakeopenai.Accounts
	cell     string // the cell's base name (its shape)
	queue    string
	plan     poolPlan
	names    []string // the fake's account names, in plan order
	client   *asynq.Client
	enq      *tasks.Enqueuer
	start    time.Time
	first    time.Time             // first request at any account
	samples  [][]fakeopenai.Sample // per account, at every poll
	enqueued map[string]time.Time  // task ID -> when it was enqueued
	zcards   int64                 // ZCARD commands the watch sent
	cut      bool                  // stopped Drain after the planned length

	failedAt       time.Time // pool-failover: when the first account ran out of quota
	answeredAtFail int

	sentA      int       // pool-tiers: phase A tasks enqueued so far
	phaseBAt   time.Time // when phase B was enqueued
	okAtPhaseB []int     // each account's OK count then
}

func newPoolWatch(e *runEnv, fake *fakeopenai.Accounts, cell, queue string, p poolPlan) *poolWatch {
	c := asynq.NewClient(e.aopt)
	w := &poolWatch{env: e, fake: fake, cell: cell, queue: queue, plan: p, names: fake.Names(), client: c,
		enq: &tasks.Enqueuer{Client: c, Opts: tasks.Options{Retention: time.Hour}}, enqueued: map[string]time.Time{}}
	w.samples = make([][]fakeopenai.Sample, len(w.names))
	return w
}

func (w *poolWatch) close() { _ = w.client.Close() }

func (w *poolWatch) enqueue(ctx context.Context, ps []*tasks.Payload) error {
	for _, p := range ps {
		if _, err := w.enq.Enqueue(ctx, p); err != nil {
			return fmt.Errorf("bench: enqueue: %w", err)
		}
		w.enqueued[p.ID] = time.Now()
	}
	return nil
}

func (w *poolWatch) wait(ctx context.Context) error {
	completed, archived := "asynq:{"+w.queue+"}:completed", "asynq:{"+w.queue+"}:archived" // asynq's key layout
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	finished := 0
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("run did not finish: %w", ctx.Err())
		case <-tick.C:
		}
		w.sample()
		if err := w.step(ctx, finished); err != nil {
			return err
		}
		n, err := countFinished(ctx, w.env.rdb, completed, archived, &w.zcards)
		if err != nil {
			return err
		}
		finished = n
		if finished >= w.plan.tasks {
			return nil
		}
		if !w.first.IsZero() && time.Since(w.first) > w.plan.length+w.env.cfg.Drain {
			w.cut = true
			return nil
		}
	}
}

// sample records every account's accounting.
func (w *poolWatch) sample() {
	for i, n := range w.names {
		sm := w.fake.Account(n).Sample()
		w.samples[i] = append(w.samples[i], sm)
		if w.first.IsZero() && sm.Requests > 0 {
			w.first = sm.At
		}
	}
}

// step runs the cell's events: the failover once a third of the batch is
// answered and the warm-up is over; phase A's paced tasks, then phase B
// once they are finished.
func (w *poolWatch) step(ctx context.Context, finished int) error {
	switch w.cell {
	case PoolCellFailover:
		// Not before the warm-up: the remaining account's figure is, like
		// every other, measured once its cold start is over.
		warm := !w.first.IsZero() && time.Since(w.first) >= w.env.cfg.Warmup
		if w.failedAt.IsZero() && warm && w.answered() >= w.plan.failAt {
			w.fake.Account(w.names[0]).SetMode(fakeopenai.ModeInsufficientQuota, 0)
			w.failedAt, w.answeredAtFail = time.Now(), w.answered()
		}
	case PoolCellTiers:
		if due := min(w.plan.phaseA, 1+int(time.Since(w.start)/w.plan.phaseAEvery)); w.sentA < due {
			ps := w.plan.payloads(w.queue, "a", w.sentA, due-w.sentA, w.env.cfg.Seed)
			for i, p := range ps {
				p.ID = fmt.Sprintf("%s-a-%06d", w.queue, w.sentA+i)
			}
			if err := w.enqueue(ctx, ps); err != nil {
				return err
			}
			w.sentA = due
		}
		if w.phaseBAt.IsZero() && w.sentA == w.plan.phaseA && finished >= w.plan.phaseA {
			for _, n := range w.names {
				w.okAtPhaseB = append(w.okAtPhaseB, w.fake.Account(n).Stats().OK)
			}
			w.phaseBAt = time.Now()
			return w.enqueue(ctx, w.plan.payloads(w.queue, "b", w.plan.phaseA, w.plan.phaseB, w.env.cfg.Seed))
		}
	}
	return nil
}

// answered is the OK answers of every account.
func (w *poolWatch) answered() int {
	n := 0
	for _, name := range w.names {
		n += w.fake.Account(name).Stats().OK
	}
	return n
}

// totals sums the accounts' counters into one RunResult.
func (w *poolWatch) totals() RunResult {
	r := RunResult{Mode: ModePromptq, Tasks: w.plan.tasks}
	byTask := map[string]int{}
	for _, n := range w.names {
		st := w.fake.Account(n).Stats()
		r.Requests += st.Requests
		r.OK += st.OK
		r.RateLimited += st.RateLimited
		r.QuotaErrors += st.QuotaErrors
		r.TokensCharged += st.TokensCharged
		r.MaxInFlight += st.MaxInFlight
		r.CallsAfterAnswered += st.CallsAfterAnswered
		for id, k := range st.ByTask {
			byTask[id] += k
		}
	}
	for _, k := range byTask {
		if k > 1 {
			r.DuplicateTasks++
		}
	}
	if r.Requests > 0 {
		r.Throttled = float64(r.RateLimited) / float64(r.Requests)
	}
	return r
}
