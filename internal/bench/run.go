package bench

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/fakeopenai"
	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/tasks"
)

// Run runs every scenario of cfg in both modes and returns the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	scenarios, err := ParseScenarios(cfg.Scenarios, cfg.Workers)
	if err != nil {
		return nil, err
	}
	rep := &Report{StartedAt: time.Now().UTC(), Redis: "shared", Concurrency: cfg.Concurrency,
		Latency: cfg.Latency.String(), TaskCost: TaskCost(), Warmup: cfg.Warmup.String()}
	if cfg.RedisURL == "" {
		r, err := startRedis(ctx, cfg.RedisServer)
		if err != nil {
			return nil, err
		}
		defer r.stop()
		cfg.RedisURL, rep.Redis = r.url, "throwaway"
	}
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("bench: Redis URL: %w", err)
	}
	aopt, err := asynq.ParseRedisURI(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("bench: Redis URL: %w", err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("bench: cannot reach Redis: %w", err)
	}
	env := &runEnv{cfg: cfg, rdb: rdb, aopt: aopt}
	for _, s := range scenarios {
		sr, err := env.scenario(ctx, s)
		if err != nil {
			return rep, err
		}
		rep.Scenarios = append(rep.Scenarios, sr)
	}
	return rep, nil
}

// runEnv is what every run of one bench shares.
type runEnv struct {
	cfg  Config
	rdb  *redis.Client
	aopt asynq.RedisConnOpt
}

func (e *runEnv) scenario(ctx context.Context, s Scenario) (ScenarioResult, error) {
	if s.Kind == KindPool {
		return e.poolScenario(ctx, s)
	}
	l := e.cfg.limitsFor(s)
	if s.Outage > 0 {
		s.Outage = e.cfg.Outage
	}
	s.Burst = l.burst
	sr := ScenarioResult{Scenario: s, RPM: l.rpm, TPM: l.tpm, Tasks: l.tasks}
	specs := e.cfg.specsFor(s, l)
	var err error
	if sr.Promptq, err = e.run(ctx, s, l, specs[0]); err != nil {
		return sr, err
	}
	if sr.Naive, err = e.run(ctx, s, l, specs[1]); err != nil {
		return sr, err
	}
	if len(specs) > 2 {
		plain, err := e.run(ctx, s, l, specs[2])
		if err != nil {
			return sr, err
		}
		sr.Plain = &plain
	}
	p, n := sr.Promptq, sr.Naive
	sr.Ratio = Ratios{
		Utilisation: ratio(p.Utilisation, n.Utilisation), Throttled: ratio(p.Throttled, n.Throttled),
		Elapsed: ratio(p.Elapsed, n.Elapsed), CommandsTask: ratio(p.CommandsPerTask, n.CommandsPerTask),
		HandlerP50: ratio(p.HandlerP50, n.HandlerP50), E2EP50: ratio(p.E2EP50, n.E2EP50),
	}
	sr.ExtraCommandsPerTask = p.CommandsPerTask - n.CommandsPerTask
	sr.ExtraEvalshaPerTask = p.EvalshaPerTask - n.EvalshaPerTask
	sr.ExtraSentPerTask = p.SentTotalPerTask() - n.SentTotalPerTask()
	return sr, nil
}

// run is one side of one scenario: fresh fake, fresh queue and account,
// N tasks enqueued, K worker processes, wait until every task is finished.
func (e *runEnv) run(ctx context.Context, s Scenario, l limits, spec runSpec) (RunResult, error) {
	mode := spec.label
	id := runID(s.Name, mode)
	fmt.Fprintf(e.cfg.Progress, "bench: %-16s %-7s %d tasks, %d workers ...\n", s.Name, mode, l.tasks, s.Workers)
	ctx, cancel := context.WithTimeout(ctx, e.cfg.RunTimeout)
	defer cancel()

	fcfg := fakeopenai.Config{RPM: l.rpm, TPM: l.tpm, Burst: l.burst, Latency: e.cfg.Latency, Jitter: e.cfg.Latency / 4}
	concurrency := e.cfg.Concurrency
	payloads := spec.payloads
	if s.Cell != nil {
		fcfg, concurrency = s.Cell.fakeConfig(l, e.cfg.Seed), e.cfg.cellConcurrency(s)
		payloads = func(run string, n int) []*tasks.Payload {
			ps := make([]*tasks.Payload, n)
			for i := range n {
				ps[i] = CellPayload(run, s.Cell.Prompts, e.cfg.Seed, i)
			}
			return ps
		}
	}
	fake := fakeopenai.New(fcfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return RunResult{}, err
	}
	hs := &http.Server{Handler: fake, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	baseURL := "http://" + ln.Addr().String() + "/v1"

	enqueued, err := e.enqueue(ctx, payloads(id, l.tasks))
	if err != nil {
		return RunResult{}, err
	}
	if err := e.setBudgets(ctx, id, spec.budgets); err != nil {
		return RunResult{}, err
	}
	meter, err := e.startMeter(ctx)
	if err != nil {
		return RunResult{}, err
	}
	start := time.Now()
	ws, err := e.startWorkers(s.Workers, concurrency, id, baseURL, spec.mode, spec.args)
	if err != nil {
		_, _, _ = meter.stop(ctx, e.rdb)
		return RunResult{}, err
	}
	defer ws.kill()

	w := &watch{env: e, fake: fake, queue: id, account: id, tasks: l.tasks, start: start, mode: spec.mode, cell: s.Cell}
	if s.Outage > 0 {
		w.outage = s.Outage
		w.out = &Outage{}
	}
	if spec.slowDown > 0 {
		w.slow = &slowWatch{length: spec.slowDown}
	}
	werr := w.wait(ctx)
	cmds, sent, err := meter.stop(context.WithoutCancel(ctx), e.rdb)
	if err != nil {
		return RunResult{}, err
	}
	wall := time.Since(start)
	stderr := ws.stop()
	if werr != nil {
		return RunResult{}, fmt.Errorf("bench: %s %s: %w\nworker stderr:\n%s", s.Name, mode, werr, stderr)
	}
	st := fake.Stats()

	r := RunResult{Mode: mode, Tasks: l.tasks, Requests: st.Requests, OK: st.OK, RateLimited: st.RateLimited,
		QuotaErrors: st.QuotaErrors, SlowDowns: st.SlowDowns, TokensCharged: st.TokensCharged, MaxInFlight: st.MaxInFlight,
		Wall: wall.Seconds(), WorkerErrors: stderr, Outage: w.out, Concurrency: concurrency,
		CallsAfterAnswered: st.CallsAfterAnswered, Cut: w.cut}
	if s.Bound != BoundNone {
		r.Window = measureWindow(w.samples, w.first, w.end, w.halved, e.cfg.Warmup, s.Bound == BoundTPM)
	}
	if r.Requests > 0 {
		r.Throttled = float64(r.RateLimited) / float64(r.Requests)
	}
	e.utilisation(&r, st, l)

	r.setCommands(cmds, sent, w.zcards)

	finished, err := e.collect(context.WithoutCancel(ctx), &r, id, enqueued, w.cut)
	if err != nil {
		return r, err
	}
	if w.slow != nil {
		r.SlowDown = w.slow.trace(w.start)
	}
	if spec.tenants {
		r.Tenants = tenantResults(id, start, finished, spec.budgets)
	}
	if spec.adaptive {
		if r.AdaptiveLimit, err = e.adaptiveLimit(context.WithoutCancel(ctx), id); err != nil {
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
	wu := 0.0
	if r.Window != nil {
		wu = r.Window.Utilisation
	}
	fmt.Fprintf(e.cfg.Progress, "bench: %-16s %-7s done in %.1fs: utilisation %.3f (after warm-up %.3f), 429s %.2f%%, %.2f promptq cmds/task, lost %d, unfinished %d\n",
		s.Name, mode, r.Wall, r.Utilisation, wu, 100*r.Throttled, r.SentPerTask[OwnerPromptq], r.Lost, r.Unfinished)
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

// redisMeter measures the Redis commands of one run: INFO commandstats
// (commands executed, Lua's included) before and after, and a MONITOR
// connection (commands sent, by owner).
type redisMeter struct {
	mon    *monitor
	before commandStats
}

func (e *runEnv) startMeter(ctx context.Context) (*redisMeter, error) {
	mon, err := startMonitor(ctx, e.rdb.Options())
	if err != nil {
		return nil, err
	}
	before, err := readCommandStats(ctx, e.rdb)
	if err != nil {
		_, _ = mon.stop()
		return nil, err
	}
	return &redisMeter{mon: mon, before: before}, nil
}

// stop ends the measurement: the commands executed since start, and the
// commands sent by owner.
func (m *redisMeter) stop(ctx context.Context, rdb *redis.Client) (commandStats, map[string]map[string]int64, error) {
	after, err := readCommandStats(ctx, rdb)
	sent, merr := m.mon.stop()
	if err = cmp.Or(err, merr); err != nil {
		return nil, nil, err
	}
	return after.sub(m.before), sent, nil
}

// setCommands fills r's Redis figures from a redisMeter's, leaving out the
// bench's own commands: INFO, and the zcards ZCARD polls of its watch.
func (r *RunResult) setCommands(d commandStats, sent map[string]map[string]int64, zcards int64) {
	delete(d, "info")
	d["zcard"] -= zcards
	if d["zcard"] <= 0 {
		delete(d, "zcard")
	}
	r.Commands = d
	r.CommandsTotal = d.total()
	r.CommandsPerTask = float64(r.CommandsTotal) / float64(r.Tasks)
	r.EvalshaPerTask = float64(d["evalsha"]+d["eval"]) / float64(r.Tasks)

	delete(sent[OwnerOther], "info")
	if a := sent[OwnerAsynq]; a != nil {
		a["zcard"] -= zcards
		if a["zcard"] <= 0 {
			delete(a, "zcard")
		}
	}
	r.Sent, r.SentPerTask = sent, map[string]float64{}
	for _, owner := range []string{OwnerPromptq, OwnerAsynq, OwnerOther} {
		n := commandStats(sent[owner]).total()
		r.SentTotal += n
		r.SentPerTask[owner] = float64(n) / float64(r.Tasks)
	}
	r.PromptqEvalshaPerTask = float64(sent[OwnerPromptq]["evalsha"]+sent[OwnerPromptq]["eval"]) / float64(r.Tasks)
}

// enqueue puts the bench tasks ps into their queue, in order, and returns
// when each was enqueued.
func (e *runEnv) enqueue(ctx context.Context, ps []*tasks.Payload) (map[string]time.Time, error) {
	c := asynq.NewClient(e.aopt)
	defer c.Close()
	enq := &tasks.Enqueuer{Client: c, Opts: tasks.Options{Retention: time.Hour}}
	at := make(map[string]time.Time, len(ps))
	for _, p := range ps {
		if _, err := enq.Enqueue(ctx, p); err != nil {
			return nil, fmt.Errorf("bench: enqueue: %w", err)
		}
		at[p.ID] = time.Now()
	}
	return at, nil
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

func (w *watch) wait(ctx context.Context) error {
	var gate *pausegate.Gate
	var insp *asynq.Inspector
	if w.out != nil {
		insp = asynq.NewInspector(w.env.aopt)
		defer insp.Close()
		var err error
		if gate, err = pausegate.New(w.env.rdb, pausegate.Config{Queues: insp, SetBy: "bench"}); err != nil {
			return err
		}
	}
	// Finished tasks are counted with two ZCARDs on asynq's sorted sets, not
	// with Inspector.GetQueueInfo: that one runs a script of a dozen reads
	// (an HGET only while tasks are pending) plus a memory-usage sampling
	// script, every 20 ms, and the figures could no longer leave the bench's
	// own commands out exactly (see w.zcards).
	completed, archived := keys.AsynqCompleted(w.queue), keys.AsynqArchived(w.queue)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	phase, okAtResume, pauseSeen, first429 := phaseBefore, 0, false, false
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
		if w.out != nil {
			st := w.fake.Stats()
			switch phase {
			case phaseBefore:
				if st.OK >= w.tasks*3/10 {
					w.fake.SetMode(fakeopenai.ModeInsufficientQuota, w.outage)
					w.note(fmt.Sprintf("outage injected: insufficient_quota for %s (%d/%d answered)", w.outage, st.OK, w.tasks))
					phase = phaseOutage
				}
			case phaseOutage:
				if !first429 && st.FirstQuotaErrorAt != "" {
					first429 = true
					if t, err := time.Parse(time.RFC3339Nano, st.FirstQuotaErrorAt); err == nil {
						w.out.Timeline = append(w.out.Timeline, Event{At: t.Sub(w.start).Seconds(),
							What: fmt.Sprintf("first insufficient_quota 429 (%d requests in flight)", st.InFlightAtFirstQuotaError)})
					}
				}
				if w.mode == ModePromptq && !pauseSeen {
					if rec, active, err := gate.Check(ctx, w.account); err == nil && active {
						pauseSeen = true
						w.note(fmt.Sprintf("account paused in Redis (kind %s, until +%.0fs)", rec.Kind, time.Until(rec.Until).Seconds()))
					}
				}
				if w.fake.Mode() == fakeopenai.ModeNormal {
					w.note(fmt.Sprintf("provider back to normal (%d requests reached it after the first quota 429)", st.RequestsAfterFirstQuotaError))
					resumed, err := gate.Resume(ctx, w.account)
					if err != nil {
						return fmt.Errorf("operator resume: %w", err)
					}
					n, err := insp.RunAllRetryTasks(w.queue)
					if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
						return fmt.Errorf("operator run retries: %w", err)
					}
					w.out.RetriesRunAtResume = n
					w.note(fmt.Sprintf("operator: resume (was paused: %v), %d parked retries run now", resumed, n))
					okAtResume, phase = st.OK, phaseResumed
				}
			case phaseResumed:
				if st.OK > okAtResume {
					w.note("first answer after resume")
					phase = phaseAfter
				}
			}
		}
		var c, a *redis.IntCmd
		_, err := w.env.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			c, a = p.ZCard(ctx, completed), p.ZCard(ctx, archived)
			return nil
		})
		w.zcards += 2
		if err != nil {
			return fmt.Errorf("poll queue: %w", err)
		}
		if int(c.Val()+a.Val()) >= w.tasks {
			if w.out != nil {
				w.note(fmt.Sprintf("all %d tasks finished", w.tasks))
			}
			return nil
		}
	}
}

// workers are the worker processes of one run.
type workers struct {
	cmds   []*exec.Cmd
	stderr []*tailBuffer
}

func (e *runEnv) startWorkers(k, concurrency int, id, baseURL, mode string, extra []string) (*workers, error) {
	args := []string{"worker",
		"--redis", e.cfg.RedisURL, "--account", id, "--queues", id + "=1",
		"--concurrency", strconv.Itoa(concurrency), "--openai-base-url", baseURL,
		"--quota-control=" + strconv.FormatBool(mode == ModePromptq),
		"--pause-duration-hours", "0.0167", "--shutdown-timeout", "5s", "--log-format", "json",
	}
	return e.spawn(k, append(args, extra...), []string{"OPENAI_API_KEY=sk-bench", "LOG_LEVEL=warn"})
}

// spawn starts k processes of `Binary args...` with env added to the
// bench's environment.
func (e *runEnv) spawn(k int, args, env []string) (*workers, error) {
	ws := &workers{}
	for i := range k {
		cmd := exec.Command(e.cfg.Binary, args...)
		cmd.Env = append(os.Environ(), env...)
		buf := &tailBuffer{max: 4096}
		cmd.Stdout, cmd.Stderr = buf, buf
		if err := cmd.Start(); err != nil {
			ws.kill()
			return nil, fmt.Errorf("bench: start worker %d: %w", i+1, err)
		}
		ws.cmds = append(ws.cmds, cmd)
		ws.stderr = append(ws.stderr, buf)
	}
	return ws, nil
}

// stop sends SIGTERM to every worker, waits for them (killing any still
// running after 10s) and returns the tail of their output.
func (ws *workers) stop() string {
	for _, c := range ws.cmds {
		_ = c.Process.Signal(syscall.SIGTERM)
	}
	var wg sync.WaitGroup
	for _, c := range ws.cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.AfterFunc(10*time.Second, func() { _ = c.Process.Kill() })
			_ = c.Wait()
			t.Stop()
		}()
	}
	wg.Wait()
	ws.cmds = nil
	var out bytes.Buffer
	for i, b := range ws.stderr {
		if s := b.String(); s != "" {
			fmt.Fprintf(&out, "worker %d: %s", i+1, s)
		}
	}
	return out.String()
}

// kill ends workers still running (after an error).
func (ws *workers) kill() {
	for _, c := range ws.cmds {
		_ = c.Process.Kill()
		_ = c.Wait()
	}
	ws.cmds = nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// runID names one run's queue and account: the scenario name ('+' of
// matrix cell names becomes '.', since queue names allow A-Z a-z 0-9 _ . : -),
// the side and a random suffix.
func runID(scenario, mode string) string {
	return strings.ReplaceAll(scenario, "+", ".") + "-" + mode + "-" + randHex(3)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
