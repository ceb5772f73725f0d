// Package worker is the task handler and the asynq server of one promptq
// worker replica: it checks the pause gate, reserves quota, calls the
// provider, settles quota with what the provider said, and stores results.
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
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
	lim      limiter
	gate     gate
	client   completer
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
	attempts atomic.Uint64 // attempt numbers, in claim owners
	settles  *settleRetry  // settles that failed, retried when Redis is back

	// Detached provider calls outlive their task's context; life ends them
	// when the worker stops, and calls waits for them.
	life     context.Context
	stopLife context.CancelFunc
	calls    sync.WaitGroup
}

// NewHandler returns a handler. lim and g may be nil when QuotaControl is off.
func NewHandler(cfg HandlerConfig, lim limiter, g gate, client completer) *Handler {
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
	h := &Handler{cfg: cfg, lim: lim, gate: g, client: client, log: log,
		yields: rate.NewLimiter(rate.Limit(cfg.YieldsPerSecond), max(1, int(cfg.YieldsPerSecond))),
		// Redis errors repeat for every task while Redis is down.
		redisLog: log.Sample(&zerolog.BurstSampler{Burst: 5, Period: 10 * time.Second}),
		life:     life, stopLife: stop, ownerID: newOwnerID()}
	h.settles = newSettleRetry(h)
	return h
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

// ProcessTask implements asynq.Handler.
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) (err error) {
	taskID, _ := asynq.GetTaskID(ctx)
	retried, _ := asynq.GetRetryCount(ctx)
	log := h.log.With().Str("task_id", taskID).Logger()
	defer func() {
		if r := recover(); r != nil {
			log.Error().Interface("panic", r).Msg("handler panic recovered")
			err = &backoff.Error{Kind: backoff.KindUnknown, Message: fmt.Sprintf("handler panic: %v", r)}
		}
	}()

	p, perr := tasks.ParsePayload(t.Payload(), 0)
	if perr != nil {
		msg := "malformed payload: " + perr.Error()
		h.writeResult(t, tasks.Result{Error: msg, ErrorKind: string(backoff.KindInvalid), Attempts: retried + 1})
		log.Warn().Str("kind", "invalid").Msg(msg)
		return fmt.Errorf("%s: %w", msg, asynq.SkipRetry)
	}
	if h.spool != nil && taskID != "" {
		// This worker holds the answer already (Redis was away when it came).
		if e, ok := h.spool.Get(taskID); ok {
			log.Info().Msg("answer found in the spool; storing it without calling the provider")
			return h.storeAnswer(ctx, t, taskID, e.Answer, log)
		}
	}
	started := h.cfg.Clock.Now()
	input := EstimateInput(h.cfg.Estimator, p)
	estIn := input.Initial() // replaced by the calibrated estimate once admitted
	maxOut := p.MaxOutputTokens
	if maxOut <= 0 {
		maxOut = h.cfg.DefaultMaxOutputTokens
	}

	// Adaptive concurrency: hold a cluster-wide permit for the call and
	// report how it went (overload shrinks the limit, calm success grows it).
	var (
		outcome = quota.LoadNone
		latency time.Duration
		ample   bool
	)
	if h.conc != nil {
		permit, werr := h.acquirePermit(ctx)
		if werr != nil {
			return werr
		}
		defer func() {
			if err := h.conc.Release(context.WithoutCancel(ctx), permit, outcome, latency, ample); err != nil {
				h.redisLog.Error().Err(err).Msg("release concurrency permit")
			}
		}()
	}

	var res quota.Reservation
	if h.cfg.QuotaControl {
		admitStart := time.Now()
		r, waited, werr := h.admit(ctx, input, maxOut, p.Tenant)
		var deferred *backoff.Deferral
		if werr == nil || errors.As(werr, &deferred) {
			h.cfg.Metrics.admitted(time.Since(admitStart), werr != nil)
		}
		var be *backoff.Error
		if errors.Is(werr, asynq.SkipRetry) && errors.As(werr, &be) {
			// Refused before any call (the cost can never fit): keep why.
			now := h.cfg.Clock.Now()
			h.writeResult(t, tasks.Result{ID: p.ID, Error: resultError(be), ErrorKind: string(be.Kind), Attempts: retried + 1,
				Model: p.Model, Endpoint: p.EndpointName(), Metadata: p.Metadata, StartedAt: &started, FinishedAt: &now})
		}
		if werr != nil {
			return werr
		}
		res, ample = r, !waited
		estIn = res.EstimatedInput
	}

	req := provider.Request{
		Endpoint: p.EndpointName(), Model: p.Model, Instructions: p.Instructions,
		Text: p.Input.Text, MaxOutputTokens: p.MaxOutputTokens, Stream: p.Stream,
		Metadata: stringMetadata(p.Metadata), TaskID: taskID,
	}
	for _, m := range p.Input.Messages {
		req.Messages = append(req.Messages, provider.Message{Role: m.Role, Content: m.Content})
	}
	// Claim the task: no other attempt calls the provider while this one's
	// call can still finish, and a task whose answer is stored is not paid
	// for twice.
	var owner string
	if h.answers != nil && taskID != "" {
		o, done, cerr := h.claimTask(ctx, taskID, log)
		if cerr != nil || done != nil {
			h.settle(ctx, res, quota.Unknown, nil, true)
		}
		switch {
		case cerr != nil:
			var w *backoff.Deferral
			if errors.As(cerr, &w) {
				log.Info().Str("reason", w.Reason).Msg("not calling the provider")
			}
			return cerr
		case done != nil:
			log.Info().Msg("answer already stored; not calling the provider again")
			return h.writeAnswer(ctx, t, done.data)
		}
		owner = o
		defer func() {
			if owner != "" { // the call did not produce an answer
				h.releaseClaim(ctx, taskID, owner)
			}
		}()
	}

	// The call runs on a context of its own, bounded by the request
	// timeout: a Redis outage that outlasts asynq's lease cancels ctx, and
	// the call must not be cut (the provider may charge it all the same).
	// It ends early only when the worker stops.
	callCtx, cancelCall := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.RequestTimeout)
	defer cancelCall()
	stopCall := context.AfterFunc(h.life, cancelCall)
	defer stopCall()
	h.calls.Add(1)
	defer h.calls.Done()

	if p.EnqueuedAt != nil && retried == 0 && inlineRetries(ctx) == 0 {
		queue, _ := asynq.GetQueueName(ctx)
		h.cfg.Metrics.taskStarted(queue, time.Since(*p.EnqueuedAt)) // the producer's wall clock
	}
	callStart := time.Now()
	var onOpen func(http.Header)
	var opened atomic.Bool // the provider admitted a stream (and charged it)
	if p.Stream && h.cfg.QuotaControl && !h.cfg.IgnoreHeaders && res.ID != "" {
		// A stream's headers arrive long before its usage: feed them to the
		// shared buckets at once; the settle at the end closes the reservation.
		onOpen = func(hdr http.Header) {
			opened.Store(true)
			if err := h.lim.Sync(callCtx, res, quota.ParseHeaders(hdr, h.cfg.Clock.Now())); err != nil {
				h.redisLog.Error().Err(err).Msg("quota sync at stream open")
			}
		}
	}
	resp, callErr := h.client.Call(callCtx, req, onOpen)
	callTime := time.Since(callStart)
	now := h.cfg.Clock.Now()
	if callErr == nil {
		outcome = quota.LoadHealthy
		// Latency per output token: raw LLM latency mostly tracks length.
		if resp.Usage != nil && resp.Usage.OutputTokens > 0 {
			latency = time.Since(callStart) / time.Duration(resp.Usage.OutputTokens)
		}
	}
	info := quota.ParseHeaders(resp.Header, now)
	if h.cfg.IgnoreHeaders {
		info = quota.Unknown
	}

	if callErr == nil {
		fin := h.cfg.Clock.Now()
		r := tasks.Result{
			ID: p.ID, OutputText: resp.Text, Attempts: retried + 1, Model: resp.Model,
			Endpoint: p.EndpointName(), ResponseID: resp.ResponseID, Metadata: p.Metadata,
			StartedAt: &started, FinishedAt: &fin,
		}
		h.cfg.Metrics.providerCall(p.EndpointName(), p.Model, "", callTime)
		if resp.Usage != nil {
			h.cfg.Metrics.usage(p.Model, resp.Usage.InputTokens, resp.Usage.OutputTokens)
			r.Usage = tasks.Usage{InputTokens: resp.Usage.InputTokens, OutputTokens: resp.Usage.OutputTokens, TotalTokens: resp.Usage.TotalTokens}
		}
		// The provider has answered and been paid: the answer is kept until
		// Redis has it, and the task is not sent again.
		data, merr := answerData(r)
		if merr != nil {
			return fmt.Errorf("encode result: %w", merr)
		}
		var kept error
		if h.answers != nil && taskID != "" {
			owner = "" // the claim becomes the answer
			if h.spool != nil {
				if err := h.spool.Add(answer.Entry{Account: h.cfg.Account, TaskID: taskID, Answer: data, At: time.Now()}); err != nil {
					log.Error().Err(err).Msg("spool file not written; the answer is kept in memory")
				}
			}
		}
		var usage *quota.Usage
		if resp.Usage != nil {
			usage = &quota.Usage{InputTokens: resp.Usage.InputTokens, OutputTokens: resp.Usage.OutputTokens, TotalTokens: resp.Usage.TotalTokens}
		}
		h.settle(ctx, res, info, usage, false)
		if h.answers != nil && taskID != "" {
			kept = h.storeAnswer(ctx, t, taskID, data, log)
		} else {
			kept = h.writeAnswer(ctx, t, data)
		}
		if kept != nil {
			return kept
		}
		h.logQuota(ctx)
		log.Debug().Int64("input_tokens", r.Usage.InputTokens).Int64("output_tokens", r.Usage.OutputTokens).Msg("task completed")
		return nil
	}

	if ctx.Err() != nil {
		// The task itself was cancelled or timed out (or the worker is shutting
		// down): the provider may have charged it, so keep the reservation.
		h.cfg.Metrics.providerCall(p.EndpointName(), p.Model, "interrupted", callTime)
		h.settle(context.WithoutCancel(ctx), res, info, nil, false)
		return fmt.Errorf("task interrupted: %w", callErr)
	}
	c := backoff.ClassifyCall(callErr, resp.Seen(), now)
	if c.Kind == backoff.KindRateLimit && info.Tokens.Limit > 0 && estIn+maxOut > info.Tokens.Limit {
		// OpenAI answers "Request too large" with a 429 too; a request that
		// needs more tokens than the whole limit can never succeed.
		c = &backoff.Error{Kind: backoff.KindInvalid, Permanent: true, StatusCode: c.StatusCode, Code: c.Code,
			Message: fmt.Sprintf("request needs about %d tokens, more than the token limit of %d: %s", estIn+maxOut, info.Tokens.Limit, c.Message), Err: c.Err}
	}
	if c.Kind == backoff.KindRateLimit || c.Kind == backoff.KindServer {
		outcome = quota.LoadOverload
	}
	h.cfg.Metrics.providerCall(p.EndpointName(), p.Model, string(c.Kind), callTime)
	log = log.With().Str("kind", string(c.Kind)).Int("status", c.StatusCode).Logger()
	switch c.Kind {
	case backoff.KindRateLimit, backoff.KindQuota, backoff.KindAuth, backoff.KindForbidden, backoff.KindInvalid:
		// The provider refused the request before doing any work, unless
		// the refusal came inside a stream it had opened: that one was
		// admitted and charged, so its debit stays.
		h.settle(ctx, res, info, nil, !opened.Load())
	default:
		h.settle(ctx, res, info, nil, false)
	}
	if h.cfg.QuotaControl && c.Kind == backoff.KindRateLimit {
		if err := h.lim.RecordThrottle(ctx, h.cfg.Account); err != nil {
			log.Error().Err(err).Msg("record 429")
		}
	}
	if h.cfg.QuotaControl && strings.EqualFold(c.Code, backoff.CodeSlowDown) {
		// The provider asks for a lower rate, then a slow ramp back up.
		if err := h.lim.SlowDown(ctx, h.cfg.Account); err != nil {
			log.Error().Err(err).Msg("record slow_down")
		} else {
			log.Warn().Msg("slow_down: admitted rate cut, ramping back up")
		}
	}
	var pausedUntil time.Time
	if h.cfg.QuotaControl {
		if until, ok := h.pauseFor(c, p.Model, now); ok {
			rec, perr := h.gate.Pause(ctx, h.cfg.Account, pausegate.PauseRequest{Until: until, Reason: c.Message, Kind: pauseKind(c)})
			if perr != nil {
				log.Error().Err(perr).Msg("pause account")
			} else {
				// The gate logs "account paused" once, at info, when this
				// request wrote or extended the record; asking for a pause
				// that is already in force is not news.
				log.Debug().Time("until", rec.Until).Time("asked_until", until).Msg("pause requested")
			}
			pausedUntil = until
			if c.RetryAfter <= 0 || c.Kind == backoff.KindQuota {
				c.RetryAfter = max(c.RetryAfter, until.Sub(now))
			}
			if c.RetryAfter > h.cfg.MaxInlineWait && h.gate.Shared(h.cfg.Account) {
				// Another active account consumes this queue: let it
				// take the task instead of parking it for the pause.
				c.RetryAfter = SharedPauseRetry
			}
		}
	}
	if c.Permanent {
		h.writeResult(t, tasks.Result{
			ID: p.ID, Error: resultError(c), ErrorKind: string(c.Kind), Attempts: retried + 1,
			Model: p.Model, Endpoint: p.EndpointName(), Metadata: p.Metadata, StartedAt: &started, FinishedAt: &now,
		})
		log.Warn().Str("error", c.Message).Msg("task failed permanently")
		return fmt.Errorf("%w: %w", c, asynq.SkipRetry)
	}
	if backoff.IsFailure(c) {
		// A failure that spends a retry: keep the provider's message, so a
		// task archived once its retries are spent says why in results.
		h.writeResult(t, tasks.Result{
			ID: p.ID, Error: resultError(c), ErrorKind: string(c.Kind), Attempts: retried + 1,
			Model: p.Model, Endpoint: p.EndpointName(), Metadata: p.Metadata, StartedAt: &started, FinishedAt: &now,
		})
	}
	if c.Kind == backoff.KindRateLimit {
		log.Debug().Time("reserved_for", res.At).Int64("remaining_requests", info.Requests.Remaining).
			Int64("remaining_tokens", info.Tokens.Remaining).Int64("retry_after_ms", c.RetryAfter.Milliseconds()).Msg("rate limited")
	} else {
		log.Info().Err(callErr).Msg("provider call failed")
	}
	if !pausedUntil.IsZero() && h.retryInline(ctx, c, pausedUntil.Sub(now)) {
		// A short, precise wait (the provider's "try again in 51ms"): wait it
		// out in this slot and start over (pause gate, a new reservation,
		// the call) instead of letting asynq round it up to a second.
		if err := h.sleepUntil(ctx, pausedUntil.Add(ScheduleSlack)); err == nil {
			return h.ProcessTask(context.WithValue(ctx, inlineRetryKey{}, inlineRetries(ctx)+1), t)
		}
	}
	return c
}

// pauseFor says whether a classified failure pauses the account, and until
// when. A rate limit pauses for exactly the provider's wait (1 s without
// one); a quota or auth failure for DefaultPause (PAUSE_DURATION_HOURS),
// whatever bucket resets or retry-after it carried: those describe the rate
// limiter, not billing or keys. A 403 pauses only when it refuses the whole
// account, or when 403s came for ForbiddenModels different models within
// ForbiddenWindow; otherwise it is the task's problem alone.
func (h *Handler) pauseFor(c *backoff.Error, model string, now time.Time) (time.Time, bool) {
	switch c.Kind {
	case backoff.KindRateLimit:
		d := c.RetryAfter
		if d <= 0 {
			d = time.Second
		}
		return now.Add(d), true
	case backoff.KindQuota, backoff.KindAuth:
		return now.Add(h.cfg.DefaultPause), true
	case backoff.KindForbidden:
		if many := h.denied.add(model, now); c.AccountWide || many {
			return now.Add(h.cfg.DefaultPause), true
		}
	}
	return time.Time{}, false
}

// pauseKind is the pause record's kind for a failure: a 403 that pauses the
// account is an auth pause.
func pauseKind(c *backoff.Error) pausegate.Kind {
	if c.Kind == backoff.KindForbidden {
		return pausegate.KindAuth
	}
	return pausegate.Kind(c.Kind)
}

// waitReason says why a refused reservation sends its task back to asynq.
func waitReason(d quota.Decision) string {
	if d.FairShare {
		return "yielding to tenants behind their fair share"
	}
	if d.Probe {
		return "waiting for the first response (cold-start probe)"
	}
	return "waiting for quota headroom"
}

// admit waits for the gate and for quota headroom. It returns a reservation
// and whether getting it took any wait (a scheduled turn or a retry), or an
// error to hand back to asynq (a *backoff.Deferral when the task should come
// back later without counting as a failure). tenant ("" = none) is the
// task's producer, held to its budget if it has one.
func (h *Handler) admit(ctx context.Context, input quota.Input, maxOut int64, tenant string) (quota.Reservation, bool, error) {
	waited := false
	started := time.Now()
	for {
		if rec, paused := h.gate.Local(h.cfg.Account); paused {
			if h.waitShortPause(ctx, rec.Until, started) {
				waited = true
				continue
			}
			if h.gate.Shared(h.cfg.Account) {
				if h.holdShared(ctx) {
					waited = true
					continue
				}
				return quota.Reservation{}, waited, sharedWait(rec.Reason)
			}
			return quota.Reservation{}, waited, h.pausedWait(rec.Until, rec.Reason)
		}
		d, err := h.lim.ReserveRequest(ctx, h.cfg.Account, input, maxOut, quota.WithTenant(tenant))
		switch {
		case errors.Is(err, quota.ErrCostExceedsLimit):
			return quota.Reservation{}, waited, fmt.Errorf("%w: %w", &backoff.Error{Kind: backoff.KindInvalid, Permanent: true,
				Message: fmt.Sprintf("request needs about %d tokens, more than the account's token limit allows", input.Initial()+maxOut)}, asynq.SkipRetry)
		case err != nil:
			return quota.Reservation{}, waited, fmt.Errorf("quota reserve: %w", err)
		case d.OK && d.Wait <= 0:
			h.stall.admitted(time.Now(), h.log)
			return d.Reservation, waited, nil
		case d.OK:
			h.stall.admitted(time.Now(), h.log)
			// Admitted on schedule: our turn comes after d.Wait.
			res, err := h.awaitTurn(ctx, d.Reservation, d.Wait)
			if errors.Is(err, errAdmitAgain) {
				waited = true
				continue
			}
			return res, true, err
		case d.Paused:
			if h.waitShortPause(ctx, d.PausedUntil, started) {
				waited = true
				continue
			}
			if h.gate.Shared(h.cfg.Account) {
				if h.holdShared(ctx) {
					waited = true
					continue
				}
				return quota.Reservation{}, waited, sharedWait("account paused")
			}
			return quota.Reservation{}, waited, h.pausedWait(d.PausedUntil, "account paused")
		case d.DailyExhausted:
			_, perr := h.gate.Pause(ctx, h.cfg.Account, pausegate.PauseRequest{Until: d.DailyResetAt, Reason: "daily budget threshold reached", Kind: pausegate.KindDaily})
			if perr != nil {
				h.log.Error().Err(perr).Msg("pause for daily budget")
			}
			return quota.Reservation{}, waited, h.pausedWait(d.DailyResetAt, "daily budget threshold reached")
		case d.Probe:
			h.stall.held(time.Now(), h.log, "cold-start probe: a reservation is in flight and no response has settled yet")
			if d.Wait > h.cfg.MaxInlineWait {
				return quota.Reservation{}, waited, &backoff.Deferral{Delay: d.Wait, Reason: waitReason(d)}
			}
		case d.FairShare && h.yields.Allow():
			// Another tenant with pending work is behind its share: step
			// aside, so this slot can take other work, possibly that
			// tenant's (tasks in one FIFO queue would otherwise reach the
			// workers only in arrival order).
			return quota.Reservation{}, waited, &backoff.Deferral{Delay: max(d.Wait, time.Second), Reason: waitReason(d)}
		case d.Wait > h.cfg.MaxInlineWait:
			return quota.Reservation{}, waited, &backoff.Deferral{Delay: h.comeBackIn(d.Wait), Reason: waitReason(d)}
		}
		// Wait out a short deficit (or, past YieldsPerSecond, other
		// tenants' turns) here, then ask again, but never hold the task's
		// slot longer than MaxInlineWait in all: then the task goes back to
		// asynq and the slot takes other work.
		if time.Since(started) > h.cfg.MaxInlineWait {
			return quota.Reservation{}, waited, &backoff.Deferral{Delay: h.comeBackIn(d.Wait), Reason: waitReason(d)}
		}
		waited = true
		if err := h.sleep(ctx, max(d.Wait, time.Millisecond)); err != nil && ctx.Err() != nil {
			return quota.Reservation{}, waited, err
		}
	}
}

// acquirePermit takes an adaptive-concurrency permit, waiting up to
// MaxInlineWait; past that the task goes back to asynq (not a failure).
func (h *Handler) acquirePermit(ctx context.Context) (quota.Permit, error) {
	deadline := time.Now().Add(h.cfg.MaxInlineWait)
	for {
		p, ok, retry, err := h.conc.Acquire(ctx, h.cfg.Account)
		switch {
		case err != nil:
			return quota.Permit{}, fmt.Errorf("concurrency permit: %w", err)
		case ok:
			return p, nil
		case time.Now().Add(retry).After(deadline):
			return quota.Permit{}, &backoff.Deferral{Delay: max(retry, time.Second), Reason: "adaptive concurrency limit reached"}
		}
		// Every waiter gets the same hint: jitter spreads them out.
		jitter := time.Duration(rand.Int64N(int64(retry)/2 + 1))
		if err := h.sleep(ctx, retry+jitter); err != nil && ctx.Err() != nil {
			return quota.Permit{}, err
		}
	}
}

// ScheduleSlack is added to every scheduled wait. The provider refills on
// its own clock and sees a request a little after we send it; a few ms of
// slack keeps a request timed to the exact refill from landing a hair early
// (seen as 429s with remaining 0 and a level of 0.99 against a 5-request
// bucket). It shifts only this request, not the schedule of the others.
const ScheduleSlack = 10 * time.Millisecond

// awaitTurn waits until a scheduled reservation's send time. A pause
// announced meanwhile, or the task's end, gives the reservation back: a
// 429 says the schedule was built on a wrong picture of the provider (a
// limit that just halved, spend we could not see), so every turn is taken
// anew from the corrected buckets rather than kept. After a short pause
// (one that ends within MaxInlineWait, as a rate-limit 429's precise wait
// does) it returns errAdmitAgain once the pause is over, so the task asks
// for a new turn instead of going back to asynq, whose delays are whole
// seconds.
func (h *Handler) awaitTurn(ctx context.Context, res quota.Reservation, wait time.Duration) (quota.Reservation, error) {
	started := time.Now()
	deadline := started.Add(wait + ScheduleSlack)
	for {
		err := h.sleep(ctx, time.Until(deadline))
		if err == nil {
			return res, nil
		}
		rec, paused := h.gate.Local(h.cfg.Account)
		if ctx.Err() == nil && !paused {
			continue // some other pause-gate change: keep the turn
		}
		h.settle(context.WithoutCancel(ctx), res, quota.Unknown, nil, true)
		if ctx.Err() != nil {
			return quota.Reservation{}, ctx.Err()
		}
		if h.waitShortPause(ctx, rec.Until, started) {
			return quota.Reservation{}, errAdmitAgain
		}
		return quota.Reservation{}, h.pausedWait(rec.Until, rec.Reason)
	}
}

// errAdmitAgain: a scheduled turn was given back for a short pause that is
// now over; ask for a new one.
var errAdmitAgain = errors.New("admit again after a short pause")

// waitShortPause waits out a pause that ends (until, zero = indefinite)
// within MaxInlineWait of started, and reports whether it did: the task
// then asks for admission again in the same slot. A longer pause, or the
// task's end, returns false at once.
func (h *Handler) waitShortPause(ctx context.Context, until time.Time, started time.Time) bool {
	if until.IsZero() {
		return false
	}
	d := until.Sub(h.cfg.Clock.Now())
	if d <= 0 {
		// Over by this host's clock, but the scripts go by Redis's, which
		// may lag: ask again after a short sleep, never in a tight loop,
		// and never past MaxInlineWait.
		if time.Since(started) > h.cfg.MaxInlineWait {
			return false
		}
		d = 50 * time.Millisecond
	}
	if time.Since(started)+d > h.cfg.MaxInlineWait {
		return false
	}
	t := time.NewTimer(d + ScheduleSlack)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// holdShared holds a task of a paused account whose queues stay running for
// other accounts for up to SharedPauseHold, and reports whether the pause
// ended meanwhile (the task then asks for admission again).
func (h *Handler) holdShared(ctx context.Context) bool {
	t := time.NewTimer(SharedPauseHold)
	defer t.Stop()
	for {
		changed := h.gate.Notify()
		if _, paused := h.gate.Local(h.cfg.Account); !paused {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return false
		case <-changed:
		}
	}
}

// sharedWait gives a task of a paused account back to asynq soon: another
// account that consumes the queue takes it.
func sharedWait(reason string) error {
	return &backoff.Deferral{Delay: SharedPauseRetry, Reason: "paused (queue shared with active accounts): " + reason}
}

// errPauseAnnounced ends a wait early: a pause was announced meanwhile.
var errPauseAnnounced = errors.New("pause announced")

// sleep waits d, or less when ctx ends or a pause is announced (pub/sub).
func (h *Handler) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	var announced <-chan struct{} // nil (never ready) without a gate
	if h.gate != nil {
		announced = h.gate.Notify()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-announced:
		return errPauseAnnounced
	case <-t.C:
		return nil
	}
}

func (h *Handler) pausedWait(until time.Time, reason string) error {
	if until.IsZero() {
		return &backoff.Deferral{Delay: h.cfg.ManualPausePoll, Reason: "paused: " + reason}
	}
	return &backoff.Deferral{Delay: max(until.Sub(h.cfg.Clock.Now()), time.Second), Reason: "paused: " + reason}
}

// settle closes a reservation. It runs even when the task's context has
// ended (a settle that never happens holds the reservation in flight for
// its whole TTL, and the cold-start probe with it); one that fails is
// retried in the background until Redis is back.
func (h *Handler) settle(ctx context.Context, res quota.Reservation, info quota.HeaderInfo, usage *quota.Usage, refund bool) {
	if !h.cfg.QuotaControl || res.ID == "" {
		return
	}
	if usage != nil && usage.Bad() && h.badUsage.Add(1) == 1 {
		// Once per worker: a provider that sends garbage sends it on every
		// answer. The calibration counts every one (status: refused signals).
		h.log.Warn().Int64("input_tokens", usage.InputTokens).Int64("output_tokens", usage.OutputTokens).
			Int64("total_tokens", usage.TotalTokens).
			Msg("provider reported impossible usage (negative or absurd): ignored, the reservation's debit stands; logged once per worker")
	}
	p := pendingSettle{res: res, info: info, usage: usage, refund: refund}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := h.settleOnce(sctx, p); err != nil {
		h.redisLog.Error().Err(err).Msg("quota settle failed; retried once Redis answers")
		h.settles.add(p)
	}
}

func (h *Handler) settleOnce(ctx context.Context, p pendingSettle) error {
	if p.refund {
		return h.lim.Refund(ctx, p.res, p.info)
	}
	return h.lim.Settle(ctx, p.res, p.info, p.usage)
}

func (h *Handler) writeResult(t *asynq.Task, r tasks.Result) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if w := t.ResultWriter(); w != nil {
		_, err = w.Write(data)
	}
	return err
}

func stringMetadata(m map[string]any) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if s, ok := v.(string); ok {
			out[k] = s
			continue
		}
		b, _ := json.Marshal(v)
		out[k] = string(b)
	}
	return out
}

// logQuota writes a quota summary every QuotaLogEvery completed tasks, so
// the log shows headroom and today's use without a line per request.
func (h *Handler) logQuota(ctx context.Context) {
	n := h.done.Add(1)
	if !h.cfg.QuotaControl || h.cfg.QuotaLogEvery <= 0 || n%int64(h.cfg.QuotaLogEvery) != 0 {
		return
	}
	s, err := h.lim.Snapshot(ctx, h.cfg.Account)
	if err != nil {
		h.log.Warn().Err(err).Msg("quota snapshot")
		return
	}
	h.log.Info().Int64("completed", n).
		Int64("requests_limit", s.Requests.Limit).Float64("requests_available", s.Requests.Available).
		Int64("tokens_limit", s.Tokens.Limit).Float64("tokens_available", s.Tokens.Available).
		Int64("in_flight", s.InFlight).Int64("throttled_total", s.Throttled).
		Int64("daily_requests", s.Daily.Requests).Int64("daily_tokens", s.Daily.Tokens).
		Float64("estimate_bias", s.EstimateBias).Msg("quota summary")
}

// resultError is the error text kept in a result: the classification and the
// provider's own message (which c.Error() leaves out of logs).
func resultError(c *backoff.Error) string {
	if c.Message == "" || strings.Contains(c.Error(), c.Message) {
		return c.Error()
	}
	return c.Error() + ": " + c.Message
}

// comeBackIn is the delay of a task handed back to asynq because its turn
// is wait away: it comes back when that turn is within MaxInlineWait (the
// scheduling window), not when it is due, so that it can take a scheduled
// turn then. Handing it back for the whole wait, which asynq rounds to
// whole seconds and checks every DelayedTaskCheckInterval, moved every
// waiting task into the retry set at once: the schedule drained, the
// queue stood empty while headroom went unused, and the batch ran in
// waves (seen at 0.64-0.88 of a 1 s token bucket in the bench matrix).
func (h *Handler) comeBackIn(wait time.Duration) time.Duration {
	return max(time.Second, wait-h.cfg.MaxInlineWait)
}
