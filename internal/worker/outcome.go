package worker

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/quota"
	"github.com/promptq/promptq/quota/backoff"
	"github.com/promptq/promptq/tasks"
)

// failed decides what a failed call means: settle its reservation, tell the
// shared model (429, slow_down), pause the account if the failure is the
// account's, and end the attempt: again (fail over to another account of
// the pool, or retry after a short precise wait), or the error asynq acts on.
func (h *Handler) failed(ctx context.Context, j *job, c *call) (again bool, err error) {
	if c.owner != "" {
		// The call produced no answer: the next attempt may call.
		h.releaseClaim(ctx, j.taskID, c.owner)
		c.owner = ""
	}
	p, a := j.p, c.route
	if ctx.Err() != nil {
		// The task itself was cancelled or timed out (or the worker is shutting
		// down): the provider may have charged it, so keep the reservation.
		h.cfg.Metrics.providerCall(p.EndpointName(), p.Model, "interrupted", c.took)
		h.settle(context.WithoutCancel(ctx), c.res, c.info, nil, false)
		return false, fmt.Errorf("task interrupted: %w", c.err)
	}
	cl := backoff.ClassifyCall(c.err, c.resp.Seen(), c.now)
	cl = backoff.TooLarge(cl, c.estIn+j.maxOut, c.info.Tokens.Limit)
	if cl.Kind == backoff.KindRateLimit || cl.Kind == backoff.KindServer {
		c.load = quota.LoadOverload
	}
	h.cfg.Metrics.providerCall(p.EndpointName(), p.Model, string(cl.Kind), c.took)
	log := j.log.With().Str("kind", string(cl.Kind)).Int("status", cl.StatusCode).Logger()
	if h.pooled() {
		log = log.With().Str("account", a.name).Logger()
	}
	switch cl.Kind {
	case backoff.KindRateLimit, backoff.KindQuota, backoff.KindAuth, backoff.KindForbidden, backoff.KindInvalid:
		// The provider refused the request before doing any work, unless
		// the refusal came inside a stream it had opened: that one was
		// admitted and charged, so its debit stays.
		h.settle(ctx, c.res, c.info, nil, !c.opened)
	default:
		h.settle(ctx, c.res, c.info, nil, false)
	}
	pausedUntil := h.tellAccount(ctx, j, c, cl, log)
	if h.failover(j, a, cl) {
		log.Warn().Str("error", cl.Message).Msg("account refused the task; failing over to another account of the pool")
		return true, nil
	}
	if cl.Permanent || backoff.IsFailure(cl) {
		// Permanent, or a failure that spends a retry: keep the provider's
		// message, so a task archived once its retries are spent says why.
		h.writeResult(j.t, tasks.Result{
			ID: p.ID, Error: resultError(cl), ErrorKind: string(cl.Kind), Attempts: j.retried + 1,
			Model: p.Model, Endpoint: p.EndpointName(), Metadata: p.Metadata, StartedAt: &j.started, FinishedAt: &c.now,
			Account: a.name,
		})
	}
	if cl.Permanent {
		log.Warn().Str("error", cl.Message).Msg("task failed permanently")
		return false, fmt.Errorf("%w: %w", cl, asynq.SkipRetry)
	}
	if cl.Kind == backoff.KindRateLimit {
		log.Debug().Time("reserved_for", c.res.At).Int64("remaining_requests", c.info.Requests.Remaining).
			Int64("remaining_tokens", c.info.Tokens.Remaining).Int64("retry_after_ms", cl.RetryAfter.Milliseconds()).Msg("rate limited")
	} else {
		// The classified message, not the raw error: the provider's body
		// is cleaned of anything that looks like a key there.
		log.Info().Str("error", resultError(cl)).Msg("provider call failed")
	}
	if h.pooled() && cl.Kind == backoff.KindRateLimit && j.inline < MaxInlineRetries {
		// The account is paused for its wait: route again at once, to
		// another account or, if none is sooner, back to this one.
		j.inline++
		return true, nil
	}
	if !pausedUntil.IsZero() && h.retryInline(j, cl, pausedUntil.Sub(c.now)) {
		// A short, precise wait (the provider's "try again in 51ms"): wait it
		// out in this slot and start over (pause gate, a new reservation,
		// the call) instead of letting asynq round it up to a second.
		if err := h.sleepUntil(ctx, pausedUntil.Add(ScheduleSlack)); err == nil {
			j.inline++
			return true, nil
		}
	}
	return false, cl
}

// tellAccount records what the failure says of the account in the shared
// state: a 429 or slow_down in the limiter, a pause (of the account, or of
// the model alone in a pool). It returns until when the account is paused
// (zero = no pause), and sets cl.RetryAfter to the task's wait.
func (h *Handler) tellAccount(ctx context.Context, j *job, c *call, cl *backoff.Error, log zerolog.Logger) time.Time {
	if !h.cfg.QuotaControl {
		return time.Time{}
	}
	a := c.route
	if cl.Kind == backoff.KindRateLimit {
		if err := a.lim.RecordThrottle(ctx, a.name); err != nil {
			log.Error().Err(err).Msg("record 429")
		}
	}
	if strings.EqualFold(cl.Code, backoff.CodeSlowDown) {
		// The provider asks for a lower rate, then a slow ramp back up.
		if err := a.lim.SlowDown(ctx, a.name); err != nil {
			log.Error().Err(err).Msg("record slow_down")
		} else {
			log.Warn().Msg("slow_down: admitted rate cut, ramping back up")
		}
	}
	if h.pooled() && backoff.ModelOnly(cl) && h.anotherServes(j, a) {
		// The account does not serve this model: the pool stops sending it
		// there for as long as a quota pause lasts, its other models carry on.
		if _, err := h.gate.PauseModel(ctx, a.name, j.p.Model, c.now.Add(h.cfg.DefaultPause), cl.Message); err != nil {
			log.Error().Err(err).Msg("pause account for the model")
		}
		return time.Time{}
	}
	until, ok := h.pauseFor(cl, a.name, j.p.Model, c.now)
	if !ok {
		return time.Time{}
	}
	rec, err := h.gate.Pause(ctx, a.name, pausegate.PauseRequest{Until: until, Reason: cl.Message, Kind: pauseKind(cl)})
	if err != nil {
		log.Error().Err(err).Msg("pause account")
	} else {
		// The gate logs "account paused" once, at info, when this request
		// wrote or extended the record; asking for a pause that is already
		// in force is not news.
		log.Debug().Time("until", rec.Until).Time("asked_until", until).Msg("pause requested")
	}
	if cl.RetryAfter <= 0 || cl.Kind == backoff.KindQuota {
		cl.RetryAfter = max(cl.RetryAfter, until.Sub(c.now))
	}
	if cl.RetryAfter > h.cfg.MaxInlineWait && (h.gate.Shared(a.name) || h.pooled()) {
		// Another active account consumes this queue, or serves the pool:
		// let it take the task instead of parking it for the pause.
		cl.RetryAfter = SharedPauseRetry
	}
	return until
}

// failover reports whether the task goes to another account of the pool
// after account a refused it for good (backoff.AccountRefused): the task
// does not spend a retry on a refusal that says nothing about it.
func (h *Handler) failover(j *job, a *target, cl *backoff.Error) bool {
	if !h.pooled() || !backoff.AccountRefused(cl) {
		return false
	}
	if j.refused == nil {
		j.refused = make(map[string]bool)
	}
	j.refused[a.name] = true
	return h.anotherServes(j, a)
}

// anotherServes reports whether an account of the pool other than a, and
// not refused already, serves the task's model.
func (h *Handler) anotherServes(j *job, a *target) bool {
	for _, r := range h.routes {
		if r != a && !j.refused[r.name] && r.serves(j.p.Model) {
			return true
		}
	}
	return false
}

// pauseFor says whether a classified failure pauses the account, and until
// when. A rate limit pauses for exactly the provider's wait (1 s without
// one); a quota or auth failure for DefaultPause (PAUSE_DURATION_HOURS),
// whatever bucket resets or retry-after it carried: those describe the rate
// limiter, not billing or keys. A 403 pauses only when it refuses the whole
// account, or when 403s came for ForbiddenModels different models within
// ForbiddenWindow on that account; otherwise it is the task's problem alone.
func (h *Handler) pauseFor(c *backoff.Error, account, model string, now time.Time) (time.Time, bool) {
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
		if many := h.denied.add(account, model, now); c.AccountWide || many {
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
