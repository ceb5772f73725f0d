// Package worker is the task handler and the asynq server of one promptq
// worker replica: it checks the pause gate, reserves quota, calls the
// provider, settles quota with what the provider said, and stores results.
package worker

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/promptq/promptq/internal/answer"
	"github.com/promptq/promptq/internal/clock"
	"github.com/promptq/promptq/internal/provider"
	"github.com/promptq/promptq/internal/tokens"
	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/quota"
	"github.com/promptq/promptq/quota/backoff"
	"github.com/promptq/promptq/tasks"
)

// limiter is the part of *quota.Limiter the handler uses.
type limiter interface {
	ReserveRequest(ctx context.Context, account string, in quota.Input, maxOutput int64, opts ...quota.ReserveOption) (quota.Decision, error)
	Settle(ctx context.Context, r quota.Reservation, info quota.HeaderInfo, usage *quota.Usage) error
	Refund(ctx context.Context, r quota.Reservation, info quota.HeaderInfo) error
	RecordThrottle(ctx context.Context, account string) error
	SlowDown(ctx context.Context, account string) error
	Sync(ctx context.Context, r quota.Reservation, info quota.HeaderInfo) error
	Snapshot(ctx context.Context, account string) (quota.Snapshot, error)
}

// gate is the part of *pausegate.Gate the handler uses.
type gate interface {
	Local(account string) (pausegate.Record, bool)
	Pause(ctx context.Context, account string, req pausegate.PauseRequest) (pausegate.Record, error)
	PauseModel(ctx context.Context, account, model string, until time.Time, reason string) (time.Time, error)
	Notify() <-chan struct{}
	Shared(account string) bool
}

// concurrency is the part of *quota.Concurrency the handler uses
// (--adaptive-concurrency).
type concurrency interface {
	Acquire(ctx context.Context, account string) (quota.Permit, bool, time.Duration, error)
	Release(ctx context.Context, p quota.Permit, o quota.LoadSignal, latency time.Duration, ample bool) error
}

// completer sends one prompt to the provider.
type completer interface {
	Call(ctx context.Context, req provider.Request, onOpen func(http.Header)) (*provider.Response, error)
}

var (
	_ limiter     = (*quota.Limiter)(nil)
	_ gate        = (*pausegate.Gate)(nil)
	_ completer   = (*provider.Client)(nil)
	_ concurrency = (*quota.Concurrency)(nil)
)

// HandlerConfig configures a Handler.
type HandlerConfig struct {
	Account string // account whose quota and pause record the handler uses (required)
	// QuotaControl turns admission control and the pause gate on (default
	// true in Run; the naive baseline of the benchmark turns it off).
	QuotaControl bool
	// IgnoreHeaders stops learning limits from the provider's rate-limit
	// headers (QUOTA_MONITORING=false): configured --rpm/--tpm and daily
	// budgets still apply, usage is still counted.
	IgnoreHeaders bool
	// QuotaLogEvery logs a quota summary every this many completed tasks of
	// this worker (QUOTA_LOG_INTERVAL; 0 = never). Pauses and 429s are
	// logged when they happen, not per request.
	QuotaLogEvery int
	// MaxInlineWait is the longest quota wait done inside the handler; longer
	// waits return the task to asynq with that delay (default 2s).
	MaxInlineWait time.Duration
	// DefaultMaxOutputTokens is reserved when a task gives no
	// max_output_tokens (default 4096).
	DefaultMaxOutputTokens int64
	// DefaultPause is the pause for quota/auth failures with no resume time
	// (PAUSE_DURATION_HOURS; default 1h).
	DefaultPause time.Duration
	// ManualPausePoll is how soon a task held by an indefinitely paused
	// account is looked at again (default 5s).
	ManualPausePoll time.Duration
	// YieldsPerSecond bounds how many tasks per second this worker hands
	// back to asynq at once after a fair-share refusal (quota.FairShare),
	// so their slots take other work, possibly the tenant that is behind
	// (default 10; Start sets the worker's concurrency: one per slot per
	// second). Past it a yielding task waits in the handler like any
	// short quota wait; without the bound a slot could cycle through the
	// yielding tenant's backlog as fast as Redis answers.
	YieldsPerSecond float64
	// RequestTimeout bounds one provider call, which runs on a context of
	// its own: neither a lost asynq lease nor a Redis outage cuts it
	// (default 10m; the provider client enforces its own timeout too).
	RequestTimeout time.Duration
	// Estimator counts input tokens for reservations (default characters/4).
	Estimator *tokens.Estimator
	// Metrics records this worker's own series (provider latency and
	// outcomes, start delay, quota waits, tokens); nil records nothing.
	Metrics *Metrics
	Clock   clock.Clock
	Logger  zerolog.Logger
}

const (
	// MaxInlineWaitDefault is HandlerConfig.MaxInlineWait's default.
	MaxInlineWaitDefault = 2 * time.Second
	// MaxOutputTokensDefault is HandlerConfig.DefaultMaxOutputTokens's
	// default: the output tokens reserved for a task that sets none.
	MaxOutputTokensDefault = 4096
	// PauseDefault is HandlerConfig.DefaultPause's default.
	PauseDefault = time.Hour
	// RequestTimeoutDefault is HandlerConfig.RequestTimeout's default.
	RequestTimeoutDefault = 10 * time.Minute

	// SharedPauseHold is how long a task of a paused account whose queues
	// another active account consumes (pausegate.Gate.Shared) waits in its
	// slot for the pause to end before going back to asynq: the wait
	// bounds how fast the paused account's idle slots take tasks from the
	// shared queue, which the other account would otherwise find empty.
	SharedPauseHold = 5 * time.Second
	// SharedPauseRetry is the delay such a task goes back to asynq with:
	// short, so that another account takes it, rather than the pause's end.
	SharedPauseRetry = time.Second
)

// Handler processes prompt tasks.
type Handler struct {
	done     atomic.Int64 // tasks completed, for QuotaLogEvery
	badUsage atomic.Int64 // usage figures refused (negative, absurd); logged once
	cfg      HandlerConfig
	routes   []*target // the accounts tasks go to: one, or a pool's (by tier)
	byName   map[string]*target
	peek     peeker // asks a pool's accounts for headroom (nil for one account)
	gate     gate
	conc     concurrency   // nil unless adaptive concurrency is on
	yields   *rate.Limiter // tasks handed back at once after a fair-share refusal
	denied   forbiddenTracker
	stall    stallWatch // admissions held with headroom (the cold-start probe)
	log      zerolog.Logger
	redisLog zerolog.Logger // sampled: for errors that repeat while Redis is down

	// Paid answers (nil with quota control off, the naive baseline).
	answers  *answer.Store
	spool    *answer.Spool
	ownerID  string        // this process, in claim owners
	claimSeq atomic.Uint64 // numbers claim owners
	settles  *settleRetry  // settles that failed, retried when Redis is back

	// Detached provider calls outlive their task's context; life ends them
	// when the worker stops, and calls waits for them.
	life     context.Context
	stopLife context.CancelFunc
	calls    sync.WaitGroup
}

// target is one account a handler sends tasks to, with its own limiter
// (its --rpm/--tpm caps) and provider client.
type target struct {
	name   string
	tier   int
	weight int
	models map[string]bool // nil = every model
	lim    limiter
	client completer
}

func (r *target) serves(model string) bool { return r.models == nil || r.models[model] }

// Route is one account of a pool (NewPoolHandler).
type Route struct {
	Account string
	Tier    int      // lower tiers are used first (default 1)
	Weight  int      // share among accounts of a tier with equal headroom (default 1)
	Models  []string // the models it serves; nil = every model
	Limiter limiter  // its limiter, configured with its own caps
	Client  completer
}

// peeker asks a pool's accounts, in one round trip, how soon a request
// fits on each (quota.Peek).
type peeker interface {
	Peek(ctx context.Context, accounts []string, in quota.Input, maxOutput int64, opts ...quota.ReserveOption) ([]quota.Headroom, error)
}

// NewHandler returns a handler that sends every task to cfg.Account. lim
// and g may be nil when QuotaControl is off.
func NewHandler(cfg HandlerConfig, lim limiter, g gate, client completer) *Handler {
	return newHandler(cfg, []Route{{Account: cfg.Account, Limiter: lim, Client: client}}, g, nil)
}

// NewPoolHandler returns a handler that routes each task to the account
// of routes that can admit it soonest, best tier first (see admitPool), and
// fails over to another account when one refuses for good (quota, key,
// model). Quota control must be on. cfg.Account names the pool: the
// namespace of its answers and logs.
func NewPoolHandler(cfg HandlerConfig, routes []Route, g gate, p peeker) *Handler {
	return newHandler(cfg, routes, g, p)
}

func newHandler(cfg HandlerConfig, routes []Route, g gate, p peeker) *Handler {
	if cfg.MaxInlineWait <= 0 {
		cfg.MaxInlineWait = MaxInlineWaitDefault
	}
	if cfg.DefaultMaxOutputTokens <= 0 {
		cfg.DefaultMaxOutputTokens = MaxOutputTokensDefault
	}
	if cfg.DefaultPause <= 0 {
		cfg.DefaultPause = PauseDefault
	}
	if cfg.ManualPausePoll <= 0 {
		cfg.ManualPausePoll = 5 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.YieldsPerSecond <= 0 {
		cfg.YieldsPerSecond = 10
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = RequestTimeoutDefault
	}
	log := cfg.Logger.With().Str("component", "handler").Logger()
	life, stop := context.WithCancel(context.Background())
	h := &Handler{cfg: cfg, gate: g, peek: p, log: log, byName: make(map[string]*target, len(routes)),
		yields: rate.NewLimiter(rate.Limit(cfg.YieldsPerSecond), max(1, int(cfg.YieldsPerSecond))),
		// Redis errors repeat for every task while Redis is down.
		redisLog: log.Sample(&zerolog.BurstSampler{Burst: 5, Period: 10 * time.Second}),
		life:     life, stopLife: stop, ownerID: newOwnerID()}
	h.settles = newSettleRetry(h)
	for _, r := range routes {
		rt := &target{name: r.Account, tier: max(r.Tier, 1), weight: max(r.Weight, 1), lim: r.Limiter, client: r.Client}
		if len(r.Models) > 0 {
			rt.models = make(map[string]bool, len(r.Models))
			for _, m := range r.Models {
				rt.models[m] = true
			}
		}
		h.routes = append(h.routes, rt)
		h.byName[rt.name] = rt
	}
	slices.SortStableFunc(h.routes, func(a, b *target) int { return cmp.Compare(a.tier, b.tier) })
	return h
}

// pooled reports whether tasks are routed among several accounts.
func (h *Handler) pooled() bool { return h.peek != nil }

// limFor is the limiter of account's route.
func (h *Handler) limFor(account string) limiter {
	if r, ok := h.byName[account]; ok {
		return r.lim
	}
	return h.routes[0].lim
}

// EstimateInput is what is known of a payload's input before it is sent:
// ceil(characters/4) and est's tokenizer count (0 when est has none for the
// model) of the instructions and each message, plus framing per message.
// The limiter turns it into the tokens it reserves (quota.Input). A nil est
// counts characters only.
func EstimateInput(est *tokens.Estimator, p *tasks.Payload) quota.Input {
	if est == nil {
		est = charsEstimator
	}
	texts := make([]string, 0, len(p.Input.Messages)+2)
	if p.Instructions != "" {
		texts = append(texts, p.Instructions)
	}
	if p.Input.Messages == nil {
		texts = append(texts, p.Input.Text)
	}
	for _, m := range p.Input.Messages {
		texts = append(texts, m.Content)
	}
	chars, toks := est.Bases(p.Model, texts...)
	return quota.Input{Chars: chars, Tokens: toks}
}

var charsEstimator = tokens.NewEstimator(tokens.ModeChars)

// ProcessTask implements asynq.Handler: a short pipeline per attempt,
// parse → admit (route to an account, reserve) → call → settle → decide the
// outcome. An attempt that ends in a short wait or a failover to another
// account of the pool runs again in the same slot (attempt reports again).
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) (err error) {
	defer func() {
		if r := recover(); r != nil {
			taskID, _ := asynq.GetTaskID(ctx)
			h.log.Error().Str("task_id", taskID).Interface("panic", r).Msg("handler panic recovered")
			err = &backoff.Error{Kind: backoff.KindUnknown, Message: fmt.Sprintf("handler panic: %v", r)}
		}
	}()
	j, err := h.parse(ctx, t)
	if j == nil {
		return err
	}
	for {
		again, err := h.attempt(ctx, j)
		if !again {
			return err
		}
	}
}

// job is one task as it goes through the pipeline.
type job struct {
	t       *asynq.Task
	taskID  string
	retried int // asynq's retry count
	log     zerolog.Logger
	p       *tasks.Payload
	input   quota.Input
	maxOut  int64
	started time.Time
	// inline counts the attempts run again in this ProcessTask (a short
	// rate-limit wait, a failover); refused lists the pool's accounts that
	// refused the task for good in this ProcessTask (failover).
	inline  int
	refused map[string]bool
}

// parse reads the task. A nil job means the task is done (err says how).
func (h *Handler) parse(ctx context.Context, t *asynq.Task) (*job, error) {
	taskID, _ := asynq.GetTaskID(ctx)
	retried, _ := asynq.GetRetryCount(ctx)
	j := &job{t: t, taskID: taskID, retried: retried, log: h.log.With().Str("task_id", taskID).Logger()}
	p, perr := tasks.ParsePayload(t.Payload(), 0)
	if perr != nil {
		msg := "malformed payload: " + perr.Error()
		h.writeResult(t, tasks.Result{Error: msg, ErrorKind: string(backoff.KindInvalid), Attempts: retried + 1})
		j.log.Warn().Str("kind", "invalid").Msg(msg)
		return nil, fmt.Errorf("%s: %w", msg, asynq.SkipRetry)
	}
	if h.spool != nil && taskID != "" {
		// This worker holds the answer already (Redis was away when it came).
		if e, ok := h.spool.Get(taskID); ok {
			j.log.Info().Msg("answer found in the spool; storing it without calling the provider")
			return nil, h.storeAnswer(ctx, t, taskID, e.Answer, j.log)
		}
	}
	j.p, j.started = p, h.cfg.Clock.Now()
	j.input = EstimateInput(h.cfg.Estimator, p)
	j.maxOut = p.MaxOutputTokens
	if j.maxOut <= 0 {
		j.maxOut = h.cfg.DefaultMaxOutputTokens
	}
	return j, nil
}

// attempt admits, calls and settles once. again asks for another attempt
// in this slot.
func (h *Handler) attempt(ctx context.Context, j *job) (again bool, err error) {
	// Adaptive concurrency: hold a cluster-wide permit for the call and
	// report how it went (overload shrinks the limit, calm success grows it).
	var c call
	if h.conc != nil {
		permit, werr := h.acquirePermit(ctx, h.routes[0].name)
		if werr != nil {
			return false, werr
		}
		defer func() {
			if err := h.conc.Release(context.WithoutCancel(ctx), permit, c.load, c.latency, c.ample); err != nil {
				h.redisLog.Error().Err(err).Msg("release concurrency permit")
			}
		}()
	}
	a, res, waited, err := h.admitTask(ctx, j)
	if err != nil {
		return false, err
	}
	c = call{route: a, res: res, ample: h.cfg.QuotaControl && !waited}
	c.estIn = j.input.Initial()
	if h.cfg.QuotaControl {
		c.estIn = res.EstimatedInput
	}
	done, err := h.send(ctx, j, &c)
	if done {
		return false, err
	}
	if c.err == nil {
		return false, h.succeeded(ctx, j, &c)
	}
	return h.failed(ctx, j, &c)
}
