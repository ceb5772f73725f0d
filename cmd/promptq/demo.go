package main

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

	"github.com/promptq/promptq/internal/config"
	"github.com/promptq/promptq/internal/fakeopenai"
	"github.com/promptq/promptq/internal/provider"
	"github.com/promptq/promptq/internal/worker"
	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/tasks"
)

const demoQueue = "demo"

func runDemo(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var (
		c           common
		baseURL     string
		model       string
		n           int
		workers     int
		concurrency int
		outage      time.Duration
		timeout     time.Duration
		ff          fakeFlags
	)
	f := config.New("demo", "Run the whole system in one process: an embedded Redis (miniredis), an embedded fake provider with\n"+
		"tight limits, several workers sharing quota, a sample batch with live progress, and a summary.\n"+
		"Exits 0 only when every task completed. --redis and --openai-base-url switch to real parts.", stdout)
	f.String(&c.redisURL, "redis", "DEMO_REDIS_URL", "", "use this Redis instead of an embedded one")
	f.String(&baseURL, "openai-base-url", "DEMO_OPENAI_BASE_URL", "", "use this provider instead of the embedded fake (needs OPENAI_API_KEY)")
	f.String(&model, "model", "DEMO_MODEL", "gpt-4o-mini", "model named in the sample tasks")
	f.Int(&n, "tasks", "DEMO_TASKS", 60, "number of sample tasks (1-100000)")
	f.Int(&workers, "workers", "DEMO_WORKERS", 3, "in-process worker replicas (1-32)")
	f.Int(&concurrency, "concurrency", "DEMO_CONCURRENCY", 4, "concurrency of each worker (1-100)")
	f.Duration(&outage, "outage", "DEMO_OUTAGE", 2*time.Second, "inject a provider 5xx outage this long at 40% of the batch (embedded fake only; 0 = none)")
	f.Duration(&timeout, "timeout", "DEMO_TIMEOUT", 3*time.Minute, "give up after this long")
	f.String(&c.logLevel, "log-level", "LOG_LEVEL", "warn", "log level of the workers")
	f.String(&c.logFormat, "log-format", "LOG_FORMAT", "auto", "log format: json, console or auto")
	ff.register(f, false)
	f.EnvOnly(apiKeyEnv, "API key for --openai-base-url (the embedded fake accepts any)")
	if err := f.Parse(args); err != nil {
		return err
	}
	if !f.Set("rpm") && os.Getenv("FAKE_OPENAI_RPM") == "" {
		ff.rpm, ff.burst = 300, time.Second // 5 requests a second: tight enough to show coordination
	}
	switch {
	case n < 1 || n > 100000:
		return fmt.Errorf("--tasks / DEMO_TASKS must be between 1 and 100000, got %d", n)
	case workers < 1 || workers > 32:
		return fmt.Errorf("--workers / DEMO_WORKERS must be between 1 and 32, got %d", workers)
	case concurrency < 1 || concurrency > 100:
		return fmt.Errorf("--concurrency / DEMO_CONCURRENCY must be between 1 and 100, got %d", concurrency)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	// Redis: embedded unless given.
	if c.redisURL == "" {
		m := miniredis.NewMiniRedis()
		m.ClockTTL(true) // without this, keys never expire in miniredis
		if err := m.StartAddr("127.0.0.1:0"); err != nil {
			return fmt.Errorf("start embedded Redis: %v", err)
		}
		defer m.Close()
		c.redisURL = "redis://" + m.Addr() + "/0"
	}
	rdb, aopt, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()

	// Provider: embedded fake unless given.
	apiKey := os.Getenv(apiKeyEnv)
	var fake *fakeopenai.Server
	if baseURL == "" {
		if fake, err = ff.server(); err != nil {
			return err
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		hs := &http.Server{Handler: fake, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = hs.Serve(ln) }()
		defer hs.Close()
		baseURL = "http://" + ln.Addr().String() + "/v1"
		apiKey = "sk-demo"
	} else if apiKey == "" {
		return fmt.Errorf("%s is not set: --openai-base-url needs the provider's API key", apiKeyEnv)
	}

	log := c.logger(stderr)
	account := "demo"
	if fake == nil {
		account = defaultAccount(baseURL, apiKey)
	}
	spool, err := os.MkdirTemp("", "promptq-demo-spool-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(spool)
	var ws []*worker.Worker
	for i := range workers {
		w, err := worker.Start(ctx, worker.Config{
			Redis: aopt, RDB: rdb, Queues: map[string]int{demoQueue: 1}, Concurrency: concurrency,
			DelayedTaskCheckInterval: 200 * time.Millisecond, SpoolDir: spool,
			Handler:  worker.HandlerConfig{Account: account, QuotaControl: true},
			Provider: provider.Config{BaseURL: baseURL, APIKey: apiKey, Timeout: time.Minute},
			Gate:     pausegate.Config{SetBy: fmt.Sprintf("demo-worker-%d", i+1)},
			Logger:   log.With().Int("replica", i+1).Logger(),
		})
		if err != nil {
			return err
		}
		ws = append(ws, w)
	}
	defer func() {
		for _, w := range ws {
			w.Stop()
		}
	}()

	insp := asynq.NewInspector(aopt)
	defer insp.Close()
	base := queueCounts(insp)
	client := asynq.NewClient(aopt)
	defer client.Close()
	enq := &tasks.Enqueuer{Client: client, Opts: tasks.Options{Retention: time.Hour}}
	runID := time.Now().Format("150405")
	for i := range n {
		p := demoPayload(runID, i, model)
		if _, err := enq.Enqueue(ctx, p); err != nil {
			return fmt.Errorf("enqueue sample task: %w", err)
		}
	}
	fmt.Fprintf(stderr, "demo: %d tasks, %d workers x %d concurrency, provider %s, account %s\n", n, workers, concurrency, baseURL, account)

	start := time.Now()
	gate, _ := pausegate.New(rdb, pausegate.Config{})
	injected := outage <= 0 || fake == nil
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var done, archived int
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("demo: gave up after %v with %d of %d tasks done", timeout, done+archived, n)
		case <-tick.C:
		}
		now := queueCounts(insp)
		done, archived = now.completed-base.completed, now.archived-base.archived
		if !injected && done >= n*4/10 {
			injected = true
			fake.SetMode(fakeopenai.ModeServerError, outage)
			fmt.Fprintf(stderr, "demo: injecting a %v provider outage (HTTP 500s)\n", outage)
		}
		throttled := 0
		if fake != nil {
			throttled = fake.Stats().RateLimited
		}
		_, paused, _ := gate.Check(ctx, account)
		el := time.Since(start)
		fmt.Fprintf(stderr, "demo: %4d/%d done  %5.1f tasks/s  retrying %d  429s %d  paused %v  %v\n",
			done, n, float64(done)/el.Seconds(), now.retry, throttled, paused, el.Round(100*time.Millisecond))
		if done+archived >= n {
			break
		}
	}
	el := time.Since(start)
	tw := tabwriter.NewWriter(stdout, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSUMMARY\t")
	fmt.Fprintf(tw, "tasks\t%d\n", n)
	fmt.Fprintf(tw, "completed\t%d\n", done)
	fmt.Fprintf(tw, "archived\t%d\n", archived)
	fmt.Fprintf(tw, "elapsed\t%v\n", el.Round(10*time.Millisecond))
	fmt.Fprintf(tw, "throughput\t%.2f tasks/s\n", float64(done)/el.Seconds())
	if fake != nil {
		s := fake.Stats()
		fmt.Fprintf(tw, "provider limit\t%d requests/min (burst %v)\n", ff.rpm, ff.burst)
		fmt.Fprintf(tw, "provider requests\t%d\n", s.Requests)
		fmt.Fprintf(tw, "429 rate limited\t%d\n", s.RateLimited)
		fmt.Fprintf(tw, "5xx (injected)\t%d\n", s.ServerErrors)
		fmt.Fprintf(tw, "max in flight\t%d\n", s.MaxInFlight)
		fmt.Fprintf(tw, "tokens in/out\t%d / %d\n", s.InputTokens, s.OutputTokens)
	}
	tw.Flush()
	if done != n {
		return errors.New("demo: not every task completed (see promptq results for the archived ones)")
	}
	fmt.Fprintln(stdout, "\nevery task completed")
	return nil
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
