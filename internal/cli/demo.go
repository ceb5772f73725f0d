package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"text/tabwriter"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/promptq/promptq/internal/config"
	"github.com/promptq/promptq/internal/fakeopenai"
	"github.com/promptq/promptq/internal/provider"
	"github.com/promptq/promptq/internal/worker"
	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/tasks"
)

const demoQueue = "demo"

// demoFlags are the flags of `promptq demo`.
type demoFlags struct {
	common
	baseURL     string
	model       string
	n           int
	workers     int
	concurrency int
	outage      time.Duration
	timeout     time.Duration
	fake        fakeFlags
}

func (d *demoFlags) register(f *config.Flags) {
	f.String(&d.redisURL, "redis", "DEMO_REDIS_URL", "", "use this Redis instead of an embedded one")
	f.String(&d.baseURL, "openai-base-url", "DEMO_OPENAI_BASE_URL", "", "use this provider instead of the embedded fake (needs OPENAI_API_KEY)")
	f.String(&d.model, "model", "DEMO_MODEL", "gpt-4o-mini", "model named in the sample tasks")
	f.Int(&d.n, "tasks", "DEMO_TASKS", 60, "number of sample tasks (1-100000)")
	f.Int(&d.workers, "workers", "DEMO_WORKERS", 3, "in-process worker replicas (1-32)")
	f.Int(&d.concurrency, "concurrency", "DEMO_CONCURRENCY", 4, "concurrency of each worker (1-100)")
	f.Duration(&d.outage, "outage", "DEMO_OUTAGE", 2*time.Second, "inject a provider 5xx outage this long at 40% of the batch (embedded fake only; 0 = none)")
	f.Duration(&d.timeout, "timeout", "DEMO_TIMEOUT", 3*time.Minute, "give up after this long")
	f.String(&d.logLevel, "log-level", "LOG_LEVEL", "warn", "log level of the workers")
	f.String(&d.logFormat, "log-format", "LOG_FORMAT", "auto", "log format: json, console or auto")
	d.fake.register(f, false)
	f.EnvOnly(apiKeyEnv, "API key for --openai-base-url (the embedded fake accepts any)")
}

func (d *demoFlags) validate() error {
	switch {
	case d.n < 1 || d.n > 100000:
		return fmt.Errorf("--tasks / DEMO_TASKS must be between 1 and 100000, got %d", d.n)
	case d.workers < 1 || d.workers > 32:
		return fmt.Errorf("--workers / DEMO_WORKERS must be between 1 and 32, got %d", d.workers)
	case d.concurrency < 1 || d.concurrency > 100:
		return fmt.Errorf("--concurrency / DEMO_CONCURRENCY must be between 1 and 100, got %d", d.concurrency)
	}
	return nil
}

func runDemo(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var d demoFlags
	f := config.New("demo", "Run the whole system in one process: an embedded Redis (miniredis), an embedded fake provider with\n"+
		"tight limits, several workers sharing quota, a sample batch with live progress, and a summary.\n"+
		"Exits 0 only when every task completed. --redis and --openai-base-url switch to real parts.", stdout)
	d.register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	if !f.Set("rpm") && os.Getenv("FAKE_OPENAI_RPM") == "" {
		d.fake.rpm, d.fake.burst = 300, time.Second // 5 requests a second: tight enough to show coordination
	}
	if err := d.validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	stopRedis, err := d.startRedis()
	if err != nil {
		return err
	}
	defer stopRedis()
	rdb, aopt, err := d.connect(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	p, err := d.startProvider()
	if err != nil {
		return err
	}
	defer p.stop()
	stopWorkers, err := d.startWorkers(ctx, aopt, rdb, p, d.common.logger(stderr))
	if err != nil {
		return err
	}
	defer stopWorkers()
	insp := asynq.NewInspector(aopt)
	defer insp.Close()
	base := queueCounts(insp)
	if err := d.enqueueSamples(ctx, aopt); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "demo: %d tasks, %d workers x %d concurrency, provider %s, account %s\n", d.n, d.workers, d.concurrency, p.baseURL, p.account)
	start := time.Now()
	done, archived, err := d.watch(ctx, rdb, insp, base, p, stderr)
	if err != nil {
		return err
	}
	d.printSummary(stdout, p.fake, done, archived, time.Since(start))
	if done != d.n {
		return errors.New("demo: not every task completed (see promptq results for the archived ones)")
	}
	fmt.Fprintln(stdout, "\nevery task completed")
	return nil
}

// startRedis starts an embedded Redis unless --redis names one.
func (d *demoFlags) startRedis() (stop func(), err error) {
	if d.redisURL != "" {
		return func() {}, nil
	}
	m := miniredis.NewMiniRedis()
	m.ClockTTL(true) // without this, keys never expire in miniredis
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("start embedded Redis: %v", err)
	}
	d.redisURL = "redis://" + m.Addr() + "/0"
	return m.Close, nil
}

// demoProvider is the provider the demo's workers call.
type demoProvider struct {
	baseURL, apiKey, account string
	fake                     *fakeopenai.Server // nil with --openai-base-url
	stop                     func()
}

// startProvider starts the embedded fake provider unless --openai-base-url
// names a real one.
func (d *demoFlags) startProvider() (*demoProvider, error) {
	if d.baseURL != "" {
		apiKey := os.Getenv(apiKeyEnv)
		if apiKey == "" {
			return nil, fmt.Errorf("%s is not set: --openai-base-url needs the provider's API key", apiKeyEnv)
		}
		return &demoProvider{baseURL: d.baseURL, apiKey: apiKey, account: defaultAccount(d.baseURL, apiKey), stop: func() {}}, nil
	}
	fake, err := d.fake.server()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hs := &http.Server{Handler: fake, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	return &demoProvider{baseURL: "http://" + ln.Addr().String() + "/v1", apiKey: "sk-demo", account: "demo",
		fake: fake, stop: func() { _ = hs.Close() }}, nil
}

// startWorkers starts --workers in-process worker replicas sharing one
// account and one spool directory.
func (d *demoFlags) startWorkers(ctx context.Context, aopt asynq.RedisConnOpt, rdb redis.UniversalClient, p *demoProvider, log zerolog.Logger) (stop func(), err error) {
	spool, err := os.MkdirTemp("", "promptq-demo-spool-")
	if err != nil {
		return nil, err
	}
	var ws []*worker.Worker
	stop = func() {
		for _, w := range ws {
			w.Stop()
		}
		_ = os.RemoveAll(spool)
	}
	for i := range d.workers {
		w, err := worker.Start(ctx, worker.Config{
			Redis: aopt, RDB: rdb, Queues: map[string]int{demoQueue: 1}, Concurrency: d.concurrency,
			DelayedTaskCheckInterval: 200 * time.Millisecond, SpoolDir: spool,
			Handler:  worker.HandlerConfig{Account: p.account, QuotaControl: true},
			Provider: provider.Config{BaseURL: p.baseURL, APIKey: p.apiKey, Timeout: time.Minute},
			Gate:     pausegate.Config{SetBy: fmt.Sprintf("demo-worker-%d", i+1)},
			Logger:   log.With().Int("replica", i+1).Logger(),
		})
		if err != nil {
			stop()
			return nil, err
		}
		ws = append(ws, w)
	}
	return stop, nil
}

// enqueueSamples enqueues --tasks sample tasks with ids unique to this run.
func (d *demoFlags) enqueueSamples(ctx context.Context, aopt asynq.RedisConnOpt) error {
	client := asynq.NewClient(aopt)
	defer client.Close()
	enq := &tasks.Enqueuer{Client: client, Opts: tasks.Options{Retention: time.Hour}}
	runID := time.Now().Format("150405")
	for i := range d.n {
		if _, err := enq.Enqueue(ctx, demoPayload(runID, i, d.model)); err != nil {
			return fmt.Errorf("enqueue sample task: %w", err)
		}
	}
	return nil
}

// watch prints progress twice a second until every sample task finished
// (completed or archived), injecting the --outage at 40% of the batch.
func (d *demoFlags) watch(ctx context.Context, rdb redis.UniversalClient, insp *asynq.Inspector, base counts, p *demoProvider, stderr io.Writer) (done, archived int, err error) {
	start := time.Now()
	gate, _ := pausegate.New(rdb, pausegate.Config{})
	injected := d.outage <= 0 || p.fake == nil
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for done+archived < d.n {
		select {
		case <-ctx.Done():
			return done, archived, fmt.Errorf("demo: gave up after %v with %d of %d tasks done", d.timeout, done+archived, d.n)
		case <-tick.C:
		}
		now := queueCounts(insp)
		done, archived = now.completed-base.completed, now.archived-base.archived
		if !injected && done >= d.n*4/10 {
			injected = true
			p.fake.SetMode(fakeopenai.ModeServerError, d.outage)
			fmt.Fprintf(stderr, "demo: injecting a %v provider outage (HTTP 500s)\n", d.outage)
		}
		throttled := 0
		if p.fake != nil {
			throttled = p.fake.Stats().RateLimited
		}
		_, paused, _ := gate.Check(ctx, p.account)
		el := time.Since(start)
		fmt.Fprintf(stderr, "demo: %4d/%d done  %5.1f tasks/s  retrying %d  429s %d  paused %v  %v\n",
			done, d.n, float64(done)/el.Seconds(), now.retry, throttled, paused, el.Round(100*time.Millisecond))
	}
	return done, archived, nil
}

// printSummary prints the demo's figures, and the fake provider's if embedded.
func (d *demoFlags) printSummary(w io.Writer, fake *fakeopenai.Server, done, archived int, el time.Duration) {
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSUMMARY\t")
	fmt.Fprintf(tw, "tasks\t%d\n", d.n)
	fmt.Fprintf(tw, "completed\t%d\n", done)
	fmt.Fprintf(tw, "archived\t%d\n", archived)
	fmt.Fprintf(tw, "elapsed\t%v\n", el.Round(10*time.Millisecond))
	fmt.Fprintf(tw, "throughput\t%.2f tasks/s\n", float64(done)/el.Seconds())
	if fake != nil {
		s := fake.Stats()
		fmt.Fprintf(tw, "provider limit\t%d requests/min (burst %v)\n", d.fake.rpm, d.fake.burst)
		fmt.Fprintf(tw, "provider requests\t%d\n", s.Requests)
		fmt.Fprintf(tw, "429 rate limited\t%d\n", s.RateLimited)
		fmt.Fprintf(tw, "5xx (injected)\t%d\n", s.ServerErrors)
		fmt.Fprintf(tw, "max in flight\t%d\n", s.MaxInFlight)
		fmt.Fprintf(tw, "tokens in/out\t%d / %d\n", s.InputTokens, s.OutputTokens)
	}
	tw.Flush()
}

type counts struct{ completed, archived, retry int }

func queueCounts(insp *asynq.Inspector) counts {
	info, err := insp.GetQueueInfo(demoQueue)
	if err != nil {
		return counts{}
	}
	return counts{info.Completed, info.Archived, info.Retry}
}

var demoTopics = []string{"a haiku about queues", "why rate limits exist", "Redis Lua scripts", "backoff with jitter",
	"a limerick about tokens", "the CAP theorem", "idempotency keys", "graceful shutdown"}

func demoPayload(runID string, i int, model string) *tasks.Payload {
	p := &tasks.Payload{
		ID:              fmt.Sprintf("demo-%s-%04d", runID, i),
		Model:           model,
		Input:           tasks.Input{Text: "Write " + demoTopics[i%len(demoTopics)] + "."},
		MaxOutputTokens: 64,
		Queue:           demoQueue,
		Metadata:        map[string]any{"demo": "true"},
	}
	switch i % 4 {
	case 1:
		p.Stream = true
	case 2:
		p.Endpoint = tasks.EndpointChat
	case 3:
		p.Endpoint, p.Stream = tasks.EndpointChat, true
		p.Input = tasks.Input{Messages: []tasks.Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Explain " + demoTopics[i%len(demoTopics)] + "."}}}
	}
	return p
}
