package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/fakeopenai"
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
	for _, s := range scenarios {
		if s.Kind == KindPool {
			if err := cfg.poolPlan(s).fits(s); err != nil {
				return nil, err
			}
		}
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

	fcfg, concurrency, payloads := e.fakeFor(s, l, spec)
	fake := fakeopenai.New(fcfg)
	hs, addr, err := serveFake(fake)
	if err != nil {
		return RunResult{}, err
	}
	defer hs.Close()

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
	ws, err := e.startWorkers(s.Workers, concurrency, id, addr+"/v1", spec.mode, spec.args)
	if err != nil {
		_, _, _ = meter.stop(ctx, e.rdb)
		return RunResult{}, err
	}
	defer ws.kill()

	w := e.newWatch(s, spec, fake, id, l.tasks, start)
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
	r, err := e.figures(context.WithoutCancel(ctx), s, l, spec, measured{id: id, w: w, enqueued: enqueued,
		cmds: cmds, sent: sent, wall: wall, stderr: stderr, concurrency: concurrency})
	if err != nil {
		return r, err
	}
	wu := 0.0
	if r.Window != nil {
		wu = r.Window.Utilisation
	}
	fmt.Fprintf(e.cfg.Progress, "bench: %-16s %-7s done in %.1fs: utilisation %.3f (after warm-up %.3f), 429s %.2f%%, %.2f promptq cmds/task, lost %d, unfinished %d\n",
		s.Name, mode, r.Wall, r.Utilisation, wu, 100*r.Throttled, r.SentPerTask[OwnerPromptq], r.Lost, r.Unfinished)
	return r, nil
}

// fakeFor returns the fake provider's configuration, each worker's
// concurrency and the task payloads of one run: a matrix cell's own, or
// the scenario's.
func (e *runEnv) fakeFor(s Scenario, l limits, spec runSpec) (fakeopenai.Config, int, func(run string, n int) []*tasks.Payload) {
	fcfg := fakeopenai.Config{RPM: l.rpm, TPM: l.tpm, Burst: l.burst, Latency: e.cfg.Latency, Jitter: e.cfg.Latency / 4}
	if s.Cell == nil {
		return fcfg, e.cfg.Concurrency, spec.payloads
	}
	payloads := func(run string, n int) []*tasks.Payload {
		ps := make([]*tasks.Payload, n)
		for i := range n {
			ps[i] = CellPayload(run, s.Cell.Prompts, e.cfg.Seed, i)
		}
		return ps
	}
	return s.Cell.fakeConfig(l, e.cfg.Seed), e.cfg.cellConcurrency(s), payloads
}

// serveFake serves the fake provider h on a free local port and returns
// the server and its base address ("http://127.0.0.1:port").
func serveFake(h http.Handler) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	return hs, "http://" + ln.Addr().String(), nil
}

// newWatch returns the watch of one run, with the scenario's outage and
// slow_down injections.
func (e *runEnv) newWatch(s Scenario, spec runSpec, fake *fakeopenai.Server, id string, n int, start time.Time) *watch {
	w := &watch{env: e, fake: fake, queue: id, account: id, tasks: n, start: start, mode: spec.mode, cell: s.Cell}
	if s.Outage > 0 {
		w.outage = s.Outage
		w.out = &Outage{}
	}
	if spec.slowDown > 0 {
		w.slow = &slowWatch{length: spec.slowDown}
	}
	return w
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
