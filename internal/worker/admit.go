package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/quota"
	"github.com/promptq/promptq/quota/backoff"
	"github.com/promptq/promptq/tasks"
)

// admitTask finds the account for the task and reserves its cost there:
// the one account, or the pool's best (admitPool). With quota control off
// (the naive baseline) it returns the first account and no reservation.
// waited says whether getting the reservation took any wait. A refusal
// that can never pass is written to the task's result.
func (h *Handler) admitTask(ctx context.Context, j *job) (a *target, res quota.Reservation, waited bool, err error) {
	a = h.routes[0]
	if !h.cfg.QuotaControl {
		return a, res, false, nil
	}
	admitStart := time.Now()
	if h.pooled() {
		a, res, waited, err = h.admitPool(ctx, j)
	} else {
		res, waited, err = h.admit(ctx, a, j.input, j.maxOut, j.p.Tenant)
	}
	var deferred *backoff.Deferral
	if err == nil || errors.As(err, &deferred) {
		h.cfg.Metrics.admitted(time.Since(admitStart), err != nil)
	}
	var be *backoff.Error
	if errors.Is(err, asynq.SkipRetry) && errors.As(err, &be) {
		// Refused before any call (the cost can never fit): keep why.
		now := h.cfg.Clock.Now()
		h.writeResult(j.t, tasks.Result{ID: j.p.ID, Error: resultError(be), ErrorKind: string(be.Kind), Attempts: j.retried + 1,
			Model: j.p.Model, Endpoint: j.p.EndpointName(), Metadata: j.p.Metadata, StartedAt: &j.started, FinishedAt: &now})
	}
	return a, res, waited, err
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

// tooLarge is the permanent refusal of a request that can never fit the
// account's limits.
func tooLarge(input quota.Input, maxOut int64, what string) error {
	return fmt.Errorf("%w: %w", &backoff.Error{Kind: backoff.KindInvalid, Permanent: true,
		Message: fmt.Sprintf("request needs about %d tokens, more than %s token limit allows", input.Initial()+maxOut, what)}, asynq.SkipRetry)
}

// admit waits for the gate and for quota headroom on account a. It
// returns a reservation and whether getting it took any wait (a scheduled
// turn or a retry), or an error to hand back to asynq (a *backoff.Deferral when
// the task should come back later without counting as a failure). tenant
// ("" = none) is the task's producer, held to its budget if it has one.
func (h *Handler) admit(ctx context.Context, a *target, input quota.Input, maxOut int64, tenant string) (quota.Reservation, bool, error) {
	waited := false
	started := time.Now()
	for {
		if rec, paused := h.gate.Local(a.name); paused {
			if h.waitShortPause(ctx, rec.Until, started) {
				waited = true
				continue
			}
			if err := h.pausedWaitShared(ctx, a, rec.Until, rec.Reason, &waited); !errors.Is(err, errPausedShort) {
				return quota.Reservation{}, waited, err
			}
			continue
		}
		d, err := a.lim.ReserveRequest(ctx, a.name, input, maxOut, quota.WithTenant(tenant))
		switch {
		case errors.Is(err, quota.ErrCostExceedsLimit):
			return quota.Reservation{}, waited, tooLarge(input, maxOut, "the account's")
		case err != nil:
			return quota.Reservation{}, waited, fmt.Errorf("quota reserve: %w", err)
		case d.OK:
			h.stall.admitted(time.Now(), h.log)
			if d.Wait <= 0 {
				return d.Reservation, waited, nil
			}
			// Admitted on schedule: our turn comes after d.Wait.
			res, err := h.awaitTurn(ctx, a, d.Reservation, d.Wait)
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
			if err := h.pausedWaitShared(ctx, a, d.PausedUntil, "account paused", &waited); !errors.Is(err, errPausedShort) {
				return quota.Reservation{}, waited, err
			}
			continue
		case d.DailyExhausted:
			return quota.Reservation{}, waited, h.dailyExhausted(ctx, a, d.DailyResetAt)
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

// errPausedShort: the account's pause ended while its task was held (see
// pausedWaitShared); ask for admission again.
var errPausedShort = errors.New("pause over: admit again")

// pausedWaitShared is the wait of a task whose account is paused past
// MaxInlineWait. When another active account consumes the queue, the task
// is held up to SharedPauseHold for the pause to end, then given back
// quickly for the other account to take.
func (h *Handler) pausedWaitShared(ctx context.Context, a *target, until time.Time, reason string, waited *bool) error {
	if !h.gate.Shared(a.name) {
		return h.pausedWait(until, reason)
	}
	if h.holdShared(ctx, a.name) {
		*waited = true
		return errPausedShort
	}
	return sharedWait(reason)
}

// dailyExhausted pauses account a until its budget day resets.
func (h *Handler) dailyExhausted(ctx context.Context, a *target, resetAt time.Time) error {
	const reason = "daily budget threshold reached"
	if _, err := h.gate.Pause(ctx, a.name, pausegate.PauseRequest{Until: resetAt, Reason: reason, Kind: pausegate.KindDaily}); err != nil {
		h.log.Error().Err(err).Str("account", a.name).Msg("pause for daily budget")
	}
	return h.pausedWait(resetAt, reason)
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

func (h *Handler) pausedWait(until time.Time, reason string) error {
	if until.IsZero() {
		return &backoff.Deferral{Delay: h.cfg.ManualPausePoll, Reason: "paused: " + reason}
	}
	return &backoff.Deferral{Delay: max(until.Sub(h.cfg.Clock.Now()), time.Second), Reason: "paused: " + reason}
}
