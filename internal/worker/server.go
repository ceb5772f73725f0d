package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/promptq/promptq/internal/answer"
	"github.com/promptq/promptq/internal/clock"
	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/internal/provider"
	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/quota"
	"github.com/promptq/promptq/quota/backoff"
	"github.com/promptq/promptq/tasks"
)

// Config configures one worker replica.
type Config struct {
	Redis       asynq.RedisConnOpt    // asynq's connection (required)
	RDB         redis.UniversalClient // promptq's own scripts (required)
	Queues      map[string]int        // queue -> priority (default critical=6,default=3,low=1)
	Concurrency int                   // tasks processed at once (default 10)
	// DelayedTaskCheckInterval is how often due retries move back to pending
	// (default 500ms; asynq's own default of 5s idles quota that is free).
	DelayedTaskCheckInterval time.Duration
	ShutdownTimeout          time.Duration // in-flight tasks get this long on SIGTERM (default 30s)
	Handler                  HandlerConfig
	Provider                 provider.Config
	Quota                    quota.Config
	Gate                     pausegate.Config
	// Pool, when not empty, routes each task among these accounts (promptq
	// worker --pool): Handler.Account then names the pool, the namespace of
	// its answers and spool. Needs QuotaControl; not with Adaptive.
	Pool []PoolAccount
	// Adaptive, when not nil, turns on the cluster-wide adaptive concurrency
	// limit (--adaptive-concurrency); asynq's Concurrency stays the ceiling.
	Adaptive *quota.ConcurrencyConfig
	// SpoolDir is the directory under which paid answers wait for Redis,
	// one subdirectory per account (default: the user's cache directory,
	// promptq/spool). Put it on storage that outlives the worker process.
	SpoolDir string
	// ResultRetention is how long a task's idempotency record (its stored
	// answer) is kept: as long as results (default 24h).
	ResultRetention time.Duration
	Logger          zerolog.Logger
}

// SpoolDirDefault is Config.SpoolDir's default: promptq/spool in the
// user's cache directory, or in the temporary directory without one.
func SpoolDirDefault() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "promptq", "spool")
}

// QueuesDefault returns Config.Queues's default, a new map on each call:
// queue name -> priority.
func QueuesDefault() map[string]int {
	return map[string]int{"critical": 6, "default": 3, "low": 1}
}

// PoolAccount is one account of a pool.
type PoolAccount struct {
	Account  string
	Tier     int      // lower tiers are used first (default 1)
	Weight   int      // share among a tier's accounts with equal headroom (default 1)
	Models   []string // nil = every model
	RPM, TPM int64    // this account's caps (0 = learn from headers)
	Provider provider.Config
}

// poolPeek asks a pool's limiters for headroom in one round trip.
type poolPeek struct {
	rdb  redis.UniversalClient
	lims map[string]*quota.Limiter
}

func (p poolPeek) Peek(ctx context.Context, accounts []string, in quota.Input, maxOutput int64, opts ...quota.ReserveOption) ([]quota.Headroom, error) {
	cands := make([]quota.Candidate, len(accounts))
	for i, a := range accounts {
		cands[i] = quota.Candidate{Limiter: p.lims[a], Account: a}
	}
	return quota.Peek(ctx, p.rdb, cands, in, maxOutput, opts...)
}

// Worker is one running replica.
type Worker struct {
	srv  *asynq.Server
	gate *pausegate.Gate
	insp *asynq.Inspector
	h    *Handler
	log  zerolog.Logger
}

// Start starts the asynq server, the pause gate's watcher and the handler.
// It returns once the server is taking tasks; Stop ends it.
func Start(ctx context.Context, cfg Config) (*Worker, error) {
	cfg = cfg.withDefaults()
	if len(cfg.Pool) > 0 && (!cfg.Handler.QuotaControl || cfg.Adaptive != nil) {
		return nil, errors.New("worker: a pool needs quota control and does not work with adaptive concurrency yet")
	}
	log := cfg.Logger.With().Str("component", "worker").Str("account", cfg.Handler.Account).Logger()
	cfg.Handler.Logger = cfg.Logger.With().Str("account", cfg.Handler.Account).Logger()
	insp := asynq.NewInspector(cfg.Redis)
	var g *pausegate.Gate
	if cfg.Handler.QuotaControl {
		var err error
		if g, err = startGate(ctx, &cfg, insp, log); err != nil {
			return nil, err
		}
	}
	if cfg.Handler.RequestTimeout == 0 && cfg.Provider.Timeout > 0 {
		cfg.Handler.RequestTimeout = cfg.Provider.Timeout
	}
	h, err := newWorkerHandler(cfg, g)
	if err != nil {
		return nil, err
	}
	go h.settles.run(h.life)
	if cfg.Handler.QuotaControl {
		if err := h.openAnswers(ctx, cfg); err != nil {
			h.stopLife()
			return nil, err
		}
	}
	if cfg.Adaptive != nil {
		conc, err := quota.NewConcurrency(cfg.RDB, *cfg.Adaptive)
		if err != nil {
			return nil, err
		}
		h.conc = conc
	}
	srv := asynq.NewServer(cfg.Redis, asynq.Config{
		Concurrency:              cfg.Concurrency,
		Queues:                   cfg.Queues,
		DelayedTaskCheckInterval: cfg.DelayedTaskCheckInterval,
		ShutdownTimeout:          cfg.ShutdownTimeout,
		RetryDelayFunc: func(n int, err error, _ *asynq.Task) time.Duration {
			return backoff.RetryDelay(n, err)
		},
		IsFailure: backoff.IsFailure,
		// asynq logs every failed poll while Redis is unreachable: keep a
		// burst of 5 lines per 10 s so an outage is visible, not a flood.
		Logger: asynqLogger{cfg.Logger.With().Str("component", "asynq").Logger().
			Sample(&zerolog.BurstSampler{Burst: 5, Period: 10 * time.Second})},
		LogLevel: asynq.WarnLevel,
	})
	mux := asynq.NewServeMux()
	mux.Handle(tasks.TypePrompt, h)
	if err := srv.Start(mux); err != nil {
		h.stopLife()
		return nil, fmt.Errorf("start asynq server: %w", err)
	}
	log.Info().Int("concurrency", cfg.Concurrency).Strs("queues", queueNames(cfg.Queues)).
		Bool("quota_control", cfg.Handler.QuotaControl).Strs("pool", poolNames(cfg.Pool)).Msg("worker started")
	return &Worker{srv: srv, gate: g, insp: insp, h: h, log: log}, nil
}

func (cfg Config) withDefaults() Config {
	if len(cfg.Queues) == 0 {
		cfg.Queues = QueuesDefault()
	}
	cfg.Concurrency = cmp.Or(cfg.Concurrency, 10)
	cfg.Handler.YieldsPerSecond = cmp.Or(cfg.Handler.YieldsPerSecond, float64(cfg.Concurrency))
	cfg.DelayedTaskCheckInterval = cmp.Or(cfg.DelayedTaskCheckInterval, 500*time.Millisecond)
	cfg.ShutdownTimeout = cmp.Or(cfg.ShutdownTimeout, 30*time.Second)
	if cfg.Handler.Clock == nil {
		cfg.Handler.Clock = clock.Real{}
	}
	if cfg.Quota.Schedule == 0 {
		cfg.Quota.Schedule = cmp.Or(cfg.Handler.MaxInlineWait, MaxInlineWaitDefault)
	}
	return cfg
}

// accounts are the accounts the worker sends to: the pool's, or its own.
func (cfg Config) accounts() []string {
	if len(cfg.Pool) == 0 {
		return []string{cfg.Handler.Account}
	}
	return poolNames(cfg.Pool)
}

func poolNames(pool []PoolAccount) []string {
	var names []string
	for _, a := range pool {
		names = append(names, a.Account)
	}
	return names
}

// startGate registers the worker's accounts with their queues and runs the
// pause gate's watcher for them.
func startGate(ctx context.Context, cfg *Config, insp *asynq.Inspector, log zerolog.Logger) (*pausegate.Gate, error) {
	gcfg := cfg.Gate
	gcfg.Queues = pausegate.AsynqQueues(insp)
	gcfg.Logger = cfg.Logger // the gate tags its own component and account
	g, err := pausegate.New(cfg.RDB, gcfg)
	if err != nil {
		return nil, err
	}
	accounts := cfg.accounts()
	for _, a := range accounts {
		if err := g.Register(ctx, a, queueNames(cfg.Queues)); err != nil {
			return nil, fmt.Errorf("register account with Redis: %w", err)
		}
	}
	if len(cfg.Pool) > 0 {
		if err := registerPool(ctx, cfg.RDB, cfg.Handler.Account, cfg.Pool); err != nil {
			return nil, err
		}
	}
	cfg.Handler.DefaultPause = gcfg.WithDefaults().DefaultPause
	go func() {
		if err := g.Run(ctx, accounts...); err != nil && !errors.Is(err, context.Canceled) {
			log.Error().Err(err).Msg("pause gate stopped")
		}
	}()
	return g, nil
}

// registerPool records the pool's accounts and tiers for admin commands,
// replacing what an earlier start wrote (an account dropped from the file
// is no longer listed).
func registerPool(ctx context.Context, rdb redis.UniversalClient, name string, pool []PoolAccount) error {
	fields := make([]any, 0, 2*len(pool))
	for _, a := range pool {
		fields = append(fields, a.Account, max(a.Tier, 1))
	}
	_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, keys.Pool(name))
		p.HSet(ctx, keys.Pool(name), fields...)
		p.SAdd(ctx, keys.Pools(), name)
		return nil
	})
	if err != nil {
		return fmt.Errorf("register pool with Redis: %w", err)
	}
	return nil
}

// newWorkerHandler builds the handler: for the worker's account, or routing
// among its pool's.
func newWorkerHandler(cfg Config, g *pausegate.Gate) (*Handler, error) {
	if len(cfg.Pool) == 0 {
		if !cfg.Handler.QuotaControl {
			h := NewHandler(cfg.Handler, nil, nil, provider.New(cfg.Provider))
			return h, nil
		}
		lim, err := quota.New(cfg.RDB, cfg.Quota)
		if err != nil {
			return nil, err
		}
		return NewHandler(cfg.Handler, lim, g, provider.New(cfg.Provider)), nil
	}
	routes := make([]Route, 0, len(cfg.Pool))
	peek := poolPeek{rdb: cfg.RDB, lims: make(map[string]*quota.Limiter, len(cfg.Pool))}
	for _, a := range cfg.Pool {
		qcfg := cfg.Quota
		qcfg.RPM, qcfg.TPM = a.RPM, a.TPM
		lim, err := quota.New(cfg.RDB, qcfg)
		if err != nil {
			return nil, fmt.Errorf("account %s: %w", a.Account, err)
		}
		pc := a.Provider
		pc.Timeout = cmp.Or(pc.Timeout, cfg.Provider.Timeout)
		pc.HTTPClient = cmp.Or(pc.HTTPClient, cfg.Provider.HTTPClient)
		routes = append(routes, Route{Account: a.Account, Tier: a.Tier, Weight: a.Weight, Models: a.Models,
			Limiter: lim, Client: provider.New(pc)})
		peek.lims[a.Account] = lim
	}
	return NewPoolHandler(cfg.Handler, routes, g, peek), nil
}

// openAnswers opens the paid answers' records and spool (in the pool's
// namespace for a pool: any account may serve a task), and stores what an
// earlier run left in the spool before any task is taken.
func (h *Handler) openAnswers(ctx context.Context, cfg Config) error {
	st, err := answer.NewStore(cfg.RDB, answer.Config{Account: cfg.Handler.Account,
		ClaimTTL: h.cfg.RequestTimeout + answer.ClaimSlack, Retention: cfg.ResultRetention})
	if err != nil {
		return err
	}
	sp, err := answer.OpenSpool(answer.SpoolDir(cmp.Or(cfg.SpoolDir, SpoolDirDefault()), cfg.Handler.Account), st, cfg.Logger)
	if err != nil {
		return err
	}
	if err := sp.FlushAll(ctx); err != nil {
		return fmt.Errorf("flush the answer spool: %w", err)
	}
	h.answers, h.spool = st, sp
	go st.Heartbeat(h.life, h.ownerID)
	go sp.Run(h.life)
	return nil
}

// Stop stops taking tasks and waits for in-flight ones (up to the shutdown
// timeout). Provider calls still running then are cut, and their claims
// released, so other workers may call for those tasks at once.
func (w *Worker) Stop() {
	w.srv.Shutdown()
	w.h.stopLife()
	done := make(chan struct{})
	go func() { w.h.calls.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		w.log.Warn().Msg("provider calls still running at exit")
	}
	if w.h.spool != nil && w.h.spool.Len() > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		left, err := w.h.spool.Flush(ctx)
		cancel()
		if left > 0 {
			w.log.Warn().Err(err).Int("answers", left).Msg("answers left in the spool; the next start stores them")
		}
	}
	_ = w.insp.Close()
	w.log.Info().Msg("worker stopped")
}

func queueNames(q map[string]int) []string {
	names := make([]string, 0, len(q))
	for n := range q {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		return q[names[i]] > q[names[j]] || (q[names[i]] == q[names[j]] && names[i] < names[j])
	})
	return names
}

// asynqLogger adapts zerolog to asynq.Logger.
type asynqLogger struct{ l zerolog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug().Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info().Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn().Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error().Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Fatal().Msg(fmt.Sprint(args...)) }
