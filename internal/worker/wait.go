package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/promptq/promptq/quota"
	"github.com/promptq/promptq/quota/backoff"
)

// acquirePermit takes an adaptive-concurrency permit, waiting up to
// MaxInlineWait; past that the task goes back to asynq (not a failure).
func (h *Handler) acquirePermit(ctx context.Context, account string) (quota.Permit, error) {
	deadline := time.Now().Add(h.cfg.MaxInlineWait)
	for {
		p, ok, retry, err := h.conc.Acquire(ctx, account)
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
func (h *Handler) awaitTurn(ctx context.Context, a *target, res quota.Reservation, wait time.Duration) (quota.Reservation, error) {
	started := time.Now()
	deadline := started.Add(wait + ScheduleSlack)
	for {
		err := h.sleep(ctx, time.Until(deadline))
		if err == nil {
			return res, nil
		}
		rec, paused := h.gate.Local(a.name)
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
func (h *Handler) holdShared(ctx context.Context, account string) bool {
	t := time.NewTimer(SharedPauseHold)
	defer t.Stop()
	for {
		changed := h.gate.Notify()
		if _, paused := h.gate.Local(account); !paused {
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
