package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/promptq/promptq/internal/answer"
	"github.com/promptq/promptq/internal/clock"
	"github.com/promptq/promptq/internal/config"
	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/internal/pool"
	"github.com/promptq/promptq/internal/provider"
	"github.com/promptq/promptq/internal/tokens"
	"github.com/promptq/promptq/internal/worker"
	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/quota"
	"github.com/promptq/promptq/tasks"
)

// workerFlags are the flags of `promptq worker` (demo reuses most of them).
type workerFlags struct {
	common
	baseURL         string
	concurrency     int
	queues          string
	quotaControl    bool
	fairShare       bool
	rpm, tpm        int64
	dailyRequests   int64
	dailyTokens     int64
	threshold       float64
	pauseHours      float64
	dailyTZ         string
	maxInlineWait   time.Duration
	defaultMaxOut   int64
	requestTimeout  time.Duration
	shutdownTimeout time.Duration
	delayedCheck    time.Duration
	estimator       string
	monitoring      bool
	quotaLogEvery   int
	adaptive        bool
	adaptiveInitial int
	adaptiveMax     int
	reservationTTL  time.Duration
	opsAddr         string
	slowdownCut     float64
	slowdownGrowth  float64
	slowdownEvery   time.Duration
	spoolDir        string
	retention       time.Duration
	clockSkew       time.Duration
	poolFile        string
}

func (w *workerFlags) register(f *config.Flags) {
	w.common.register(f, true)
	f.String(&w.baseURL, "openai-base-url", "OPENAI_BASE_URL", openAIURLDefault, "provider base URL (OpenAI or any OpenAI-compatible server)")
	f.Int(&w.concurrency, "concurrency", "WORKER_CONCURRENCY", 10, "tasks this replica processes at once (1-1000)")
	f.String(&w.queues, "queues", "WORKER_QUEUES", queuesDefault, "queues and priorities, e.g. critical=6,default=3,low=1")
	f.Bool(&w.monitoring, "quota-monitoring", "QUOTA_MONITORING", true, "learn limits from the provider's x-ratelimit-* headers (off: only --rpm/--tpm and daily budgets apply)")
	f.Int(&w.quotaLogEvery, "quota-log-interval", "QUOTA_LOG_INTERVAL", 100, "log a quota summary every N completed tasks of this worker (0 = never; pauses and 429s are logged as they happen)")
	f.Bool(&w.adaptive, "adaptive-concurrency", "ADAPTIVE_CONCURRENCY", false, "cluster-wide in-flight limit per account that grows while calm and shrinks on 429s, 5xx and rising latency (--concurrency stays each replica's ceiling)")
	f.Int(&w.adaptiveInitial, "adaptive-initial", "ADAPTIVE_INITIAL", quota.ConcurrencyInitialDefault, "starting cluster-wide in-flight limit with --adaptive-concurrency")
	f.Int(&w.adaptiveMax, "adaptive-max", "ADAPTIVE_MAX", quota.ConcurrencyMaxDefault, "largest cluster-wide in-flight limit with --adaptive-concurrency")
	f.Bool(&w.quotaControl, "quota-control", "QUOTA_CONTROL", true, "shared admission control and pause gate (off = naive baseline: asynq + openai-go alone)")
	f.Bool(&w.fairShare, "fair-share", "FAIR_SHARE", true, "weighted fair sharing of short headroom between tenants with pending work (see promptq tenant set --weight); off = first come, first served. Set alike on every worker of an account")
	f.Int64(&w.rpm, "rpm", "PROMPTQ_RPM", 0, "cap on requests per minute (0 = learn from the provider's headers)")
	f.Int64(&w.tpm, "tpm", "PROMPTQ_TPM", 0, "cap on tokens per minute (0 = learn from the provider's headers)")
	f.Int64(&w.dailyRequests, "daily-request-limit", "DAILY_REQUEST_LIMIT", 0, "daily request budget (0 = none)")
	f.Int64(&w.dailyTokens, "daily-token-limit", "DAILY_TOKEN_LIMIT", 0, "daily token budget (0 = none)")
	f.Float(&w.threshold, "quota-threshold", "QUOTA_THRESHOLD", 0.8, "fraction of the daily budget at which the account pauses until the day rolls over (0 < x <= 1)")
	f.Float(&w.pauseHours, "pause-duration-hours", "PAUSE_DURATION_HOURS", 1, "pause after insufficient_quota or an auth failure, when the provider gives no resume time (0.0003 = 1 s up to 168)")
	f.String(&w.dailyTZ, "daily-timezone", "DAILY_TIMEZONE", "UTC", "time zone in which the daily budget rolls over (IANA name)")
	f.Duration(&w.maxInlineWait, "max-inline-wait", "MAX_INLINE_WAIT", worker.MaxInlineWaitDefault, "longest quota wait done inside the handler; longer waits return the task to asynq")
	f.Int64(&w.defaultMaxOut, "default-max-output-tokens", "DEFAULT_MAX_OUTPUT_TOKENS", worker.MaxOutputTokensDefault, "output tokens reserved for a task that sets no max_output_tokens")
	f.String(&w.opsAddr, "ops-addr", "WORKER_OPS_ADDR", "", "serve this worker's /healthz (Redis reachable) and /metrics (this process's own series: provider latency and outcomes, start delay, quota waits, tokens, build info) on this address, e.g. 127.0.0.1:9090 (empty = off)")
	f.Duration(&w.reservationTTL, "reservation-ttl", "RESERVATION_TTL", quota.ReservationTTLDefault, "how long a reservation of a worker that died mid-request stays counted in flight (at least --request-timeout)")
	f.Float(&w.slowdownCut, "slowdown-cut", "SLOWDOWN_CUT", quota.RampCutDefault, "after a 503 slow_down, the account's admitted rate becomes this fraction of the current one (0 < x < 1)")
	f.Float(&w.slowdownGrowth, "slowdown-growth", "SLOWDOWN_GROWTH", quota.RampGrowthDefault, "after a slow_down cut, the admitted rate grows by at most this fraction per --slowdown-interval until back at the full limit (0 < x <= 10)")
	f.Duration(&w.slowdownEvery, "slowdown-interval", "SLOWDOWN_INTERVAL", quota.RampIntervalDefault, "period of --slowdown-growth (1s to 24h)")
	f.Duration(&w.requestTimeout, "request-timeout", "REQUEST_TIMEOUT", 10*time.Minute, "timeout of one provider request")
	f.String(&w.spoolDir, "spool-dir", "WORKER_SPOOL_DIR", worker.SpoolDirDefault(), "directory where paid answers wait while Redis is away (one subdirectory per account); keep it across restarts: a worker stores what is there before taking tasks")
	f.Duration(&w.retention, "retention", "RESULT_RETENTION", tasks.RetentionDefault, "how long a task's stored answer (its idempotency record) is kept; match enqueue's --retention")
	f.Duration(&w.clockSkew, "clock-skew", "PROMPTQ_CLOCK_SKEW", 0, "testing aid: run as if this host's clock were off by this much (-1h to 1h); shared state keeps Redis's clock either way")
	f.Duration(&w.shutdownTimeout, "shutdown-timeout", "SHUTDOWN_TIMEOUT", 30*time.Second, "on SIGTERM, how long in-flight tasks may run before they are returned to the queue")
	f.String(&w.estimator, "token-estimator", "TOKEN_ESTIMATOR", tokens.ModeAuto, "input-token estimate for reservations: auto (the model's tokenizer for OpenAI models, else characters/4) or chars")
	f.String(&w.poolFile, "pool", "PROMPTQ_POOL", "", "pool file (YAML or JSON) listing the accounts this worker routes tasks to, each with its base URL, the variable holding its key, models, tier, weight and caps (README: Account pools); without it the worker serves --account with "+apiKeyEnv)
	f.Duration(&w.delayedCheck, "delayed-check-interval", "DELAYED_TASK_CHECK_INTERVAL", 500*time.Millisecond, "how often due retries move back to pending")
}

// validate checks the flags; each message names the flag, its env and the
// allowed range. The settings of a component (quota, pause gate, adaptive
// concurrency, answer store) are checked by the component's own Validate,
// one flag at a time so that the message names the flag; the rest, which
// no component validates, are checked here.
func (w *workerFlags) validate(f *config.Flags) error {
	if err := w.validateWorker(); err != nil {
		return err
	}
	for _, c := range w.componentChecks() {
		if err := c.check(); err != nil {
			label := f.Label(c.flags[0])
			for _, fl := range c.flags[1:] {
				label += ", " + f.Label(fl)
			}
			return fmt.Errorf("%s: %v", label, err)
		}
	}
	return nil
}

// validateWorker checks the flags of the worker itself and of the handler,
// whose configs have no Validate.
func (w *workerFlags) validateWorker() error {
	switch {
	case w.concurrency < 1 || w.concurrency > 1000:
		return fmt.Errorf("--concurrency / WORKER_CONCURRENCY must be between 1 and 1000, got %d", w.concurrency)
	case w.maxInlineWait < 10*time.Millisecond || w.maxInlineWait > time.Minute:
		return fmt.Errorf("--max-inline-wait / MAX_INLINE_WAIT must be between 10ms and 1m, got %v", w.maxInlineWait)
	case w.defaultMaxOut < 1 || w.defaultMaxOut > 1_000_000:
		return fmt.Errorf("--default-max-output-tokens / DEFAULT_MAX_OUTPUT_TOKENS must be between 1 and 1000000, got %d", w.defaultMaxOut)
	case w.reservationTTL < w.requestTimeout:
		return fmt.Errorf("--reservation-ttl / RESERVATION_TTL must be between --request-timeout (%v) and 24h, got %v", w.requestTimeout, w.reservationTTL)
	case w.quotaLogEvery < 0 || w.quotaLogEvery > 1_000_000:
		return fmt.Errorf("--quota-log-interval / QUOTA_LOG_INTERVAL must be between 0 and 1000000, got %d", w.quotaLogEvery)
	case w.clockSkew < -time.Hour || w.clockSkew > time.Hour:
		return fmt.Errorf("--clock-skew / PROMPTQ_CLOCK_SKEW must be between -1h and 1h, got %v", w.clockSkew)
	case w.spoolDir == "":
		return errors.New("--spool-dir / WORKER_SPOOL_DIR must not be empty")
	case w.delayedCheck < 10*time.Millisecond || w.delayedCheck > time.Minute:
		return fmt.Errorf("--delayed-check-interval / DELAYED_TASK_CHECK_INTERVAL must be between 10ms and 1m, got %v", w.delayedCheck)
	case w.estimator != tokens.ModeAuto && w.estimator != tokens.ModeChars:
		return fmt.Errorf("--token-estimator / TOKEN_ESTIMATOR must be auto or chars, got %q", w.estimator)
	}
	if _, err := time.LoadLocation(w.dailyTZ); err != nil {
		return fmt.Errorf("--daily-timezone / DAILY_TIMEZONE %q: unknown time zone", w.dailyTZ)
	}
	return nil
}

// componentCheck validates the value of flags (usually one) by the Validate
// of the component config it sets.
type componentCheck struct {
	flags []string
	check func() error
}

func (w *workerFlags) componentChecks() []componentCheck {
	q := func(set func(*quota.Config)) func() error {
		return func() error { c := quota.Config{}.WithDefaults(); set(&c); return c.Validate() }
	}
	checks := []componentCheck{
		{[]string{"rpm"}, q(func(c *quota.Config) { c.RPM = w.rpm })},
		{[]string{"tpm"}, q(func(c *quota.Config) { c.TPM = w.tpm })},
		{[]string{"daily-request-limit"}, q(func(c *quota.Config) { c.DailyRequests = w.dailyRequests })},
		{[]string{"daily-token-limit"}, q(func(c *quota.Config) { c.DailyTokens = w.dailyTokens })},
		{[]string{"quota-threshold"}, q(func(c *quota.Config) { c.Threshold = w.threshold })},
		{[]string{"reservation-ttl"}, q(func(c *quota.Config) { c.ReservationTTL = w.reservationTTL })},
		{[]string{"slowdown-cut"}, q(func(c *quota.Config) { c.RampCut = w.slowdownCut })},
		{[]string{"slowdown-growth"}, q(func(c *quota.Config) { c.RampGrowth = w.slowdownGrowth })},
		{[]string{"slowdown-interval"}, q(func(c *quota.Config) { c.RampInterval = w.slowdownEvery })},
		{[]string{"pause-duration-hours"}, func() error {
			c := pausegate.Config{}.WithDefaults()
			c.DefaultPause = w.pauseDuration()
			return c.Validate()
		}},
		{[]string{"retention"}, func() error {
			return answer.Config{Account: "x", Retention: w.retention}.WithDefaults().Validate()
		}},
	}
	if w.adaptive {
		checks = append(checks, componentCheck{[]string{"adaptive-initial", "adaptive-max"}, func() error {
			return w.adaptiveConfig().Validate()
		}})
	}
	return checks
}

// pauseDuration is --pause-duration-hours as a duration; -1 when it is not
// a finite number of hours a duration can hold (pausegate refuses it).
func (w *workerFlags) pauseDuration() time.Duration {
	h := w.pauseHours * float64(time.Hour)
	if math.IsNaN(h) || math.Abs(h) > math.MaxInt64/2 {
		return -1
	}
	return time.Duration(math.Round(h))
}

// adaptiveConfig is the cluster-wide concurrency limit of
// --adaptive-concurrency.
func (w *workerFlags) adaptiveConfig() quota.ConcurrencyConfig {
	c := quota.ConcurrencyConfig{}.WithDefaults()
	c.Initial, c.Max = w.adaptiveInitial, w.adaptiveMax
	// A permit must outlive the longest request it guards.
	c.Lease = max(quota.ConcurrencyLeaseDefault, w.requestTimeout+time.Minute)
	return c
}

// workerConfig builds a worker.Config (without Redis connections).
func (w *workerFlags) workerConfig(apiKey string) (worker.Config, error) {
	queues, err := config.ParseQueues(w.queues)
	if err != nil {
		return worker.Config{}, fmt.Errorf("--queues / WORKER_QUEUES: %v", err)
	}
	account := w.account
	if account == "" {
		account = defaultAccount(w.baseURL, apiKey)
	}
	if err := keys.ValidateAccount(account); err != nil {
		return worker.Config{}, fmt.Errorf("--account / %s: %v", accountEnv, err)
	}
	loc, _ := time.LoadLocation(w.dailyTZ)
	pause := w.pauseDuration()
	var adaptive *quota.ConcurrencyConfig
	if w.adaptive {
		a := w.adaptiveConfig()
		adaptive = &a
	}
	var clk clock.Clock = clock.Real{}
	if w.clockSkew != 0 {
		clk = clock.Skewed{Offset: w.clockSkew}
	}
	return worker.Config{
		Adaptive:                 adaptive,
		Queues:                   queues,
		Concurrency:              w.concurrency,
		DelayedTaskCheckInterval: w.delayedCheck,
		ShutdownTimeout:          w.shutdownTimeout,
		SpoolDir:                 w.spoolDir,
		ResultRetention:          w.retention,
		Handler: worker.HandlerConfig{
			Account: account, QuotaControl: w.quotaControl, MaxInlineWait: w.maxInlineWait,
			DefaultMaxOutputTokens: w.defaultMaxOut, DefaultPause: pause,
			Estimator: tokens.NewEstimator(w.estimator), IgnoreHeaders: !w.monitoring, QuotaLogEvery: w.quotaLogEvery,
			RequestTimeout: w.requestTimeout, Clock: clk,
		},
		Provider: provider.Config{BaseURL: w.baseURL, APIKey: apiKey, Timeout: w.requestTimeout},
		Quota: quota.Config{
			RPM: w.rpm, TPM: w.tpm, DailyRequests: w.dailyRequests, DailyTokens: w.dailyTokens,
			Threshold: w.threshold, Location: loc, ReservationTTL: w.reservationTTL,
			RampCut: w.slowdownCut, RampGrowth: w.slowdownGrowth, RampInterval: w.slowdownEvery,
			NoFairShare: !w.fairShare, Clock: clk,
		},
		Gate: pausegate.Config{DefaultPause: pause, Clock: clk},
	}, nil
}

// config builds the worker's config: for one account and OPENAI_API_KEY,
// or for the pool of --pool.
func (w *workerFlags) config() (worker.Config, error) {
	if w.poolFile == "" {
		apiKey := os.Getenv(apiKeyEnv)
		if apiKey == "" {
			return worker.Config{}, fmt.Errorf("%s is not set: the worker needs the provider's API key in the environment (or a --pool file naming a variable per account)", apiKeyEnv)
		}
		return w.workerConfig(apiKey)
	}
	switch {
	case w.account != "":
		return worker.Config{}, errors.New("--pool / PROMPTQ_POOL and --account / " + accountEnv + " do not go together: the pool file names the accounts (and the pool)")
	case w.rpm != 0 || w.tpm != 0:
		return worker.Config{}, errors.New("--pool / PROMPTQ_POOL and --rpm/--tpm do not go together: set rpm and tpm per account in the pool file")
	case w.adaptive:
		return worker.Config{}, errors.New("--pool / PROMPTQ_POOL and --adaptive-concurrency do not go together yet")
	case !w.quotaControl:
		return worker.Config{}, errors.New("--pool / PROMPTQ_POOL needs --quota-control: routing is by the shared quota state")
	}
	p, err := pool.Load(w.poolFile, os.Getenv)
	if err != nil {
		return worker.Config{}, err
	}
	w.account = p.Name
	cfg, err := w.workerConfig("")
	if err != nil {
		return worker.Config{}, err
	}
	cfg.Provider.APIKey = ""
	for _, a := range p.Accounts {
		cfg.Pool = append(cfg.Pool, worker.PoolAccount{
			Account: a.Name, Tier: a.Tier, Weight: a.Weight, Models: a.Models, RPM: a.RPM, TPM: a.TPM,
			Provider: provider.Config{BaseURL: a.BaseURL, APIKey: a.APIKey, Timeout: w.requestTimeout,
				API: a.API, APIVersion: a.APIVersion, Deployments: a.Deployments},
		})
	}
	return cfg, nil
}

func runWorker(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var w workerFlags
	f := config.New("worker", "Run one worker replica (an asynq server). SIGTERM/SIGINT: stop taking tasks, let in-flight ones finish, exit 0.", stdout)
	w.register(f)
	f.EnvOnly(apiKeyEnv, apiKeyEnvDocument)
	if err := f.Parse(args); err != nil {
		return err
	}
	if err := w.validate(f); err != nil {
		return err
	}
	cfg, err := w.config()
	if err != nil {
		return err
	}
	rdb, aopt, err := w.connect(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	cfg.Redis, cfg.RDB, cfg.Logger = aopt, rdb, w.logger(stderr)
	cfg.Handler.Metrics = worker.NewMetrics(cfg.Handler.Account)
	reg, err := worker.OpsRegistry(cfg.Handler.Metrics)
	if err != nil {
		return err
	}
	wk, err := worker.Start(ctx, cfg)
	if err != nil {
		return err
	}
	if w.opsAddr != "" {
		go func() {
			if err := worker.ServeOps(ctx, w.opsAddr, rdb, reg, cfg.Logger); err != nil {
				cfg.Logger.Error().Err(err).Msg("ops server stopped")
			}
		}()
	}
	<-ctx.Done()
	wk.Stop()
	return nil
}
