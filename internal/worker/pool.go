package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/hibiken/asynq"

	"github.com/promptq/promptq/quota"
	"github.com/promptq/promptq/quota/backoff"
)

// NearTie is how close two accounts' waits must be for the pool to count
// them as equally soon and pick between them by weight and headroom.
const NearTie = 25 * time.Millisecond

// admitPool routes a task to the account of the pool that can admit it
// soonest, and reserves its cost there. One round trip asks every account
// that serves the task's model (and is not paused, for the model or wholly)
// how soon the request fits (quota.Peek); the best tier whose accounts can
// admit it within the scheduling window (MaxInlineWait) wins, so a lower
// tier takes traffic only while the better one is short. Within the tier the
// soonest account wins; accounts about as soon (NearTie) share by weight and
// free headroom. The reservation is then asked of that account alone, for a
// turn no later than the next account's: if another worker took it meanwhile,
// the pool is asked again. The task goes back to asynq only when no account
// can take it within the window.
func (h *Handler) admitPool(ctx context.Context, j *job) (*target, quota.Reservation, bool, error) {
	started := time.Now()
	waited := false
	opts := []quota.ReserveOption{quota.WithTenant(j.p.Tenant), quota.WithModel(j.p.Model)}
	if !slices.ContainsFunc(h.routes, func(r *target) bool { return r.serves(j.p.Model) }) {
		return nil, quota.Reservation{}, false, fmt.Errorf("%w: %w", &backoff.Error{Kind: backoff.KindInvalid, Permanent: true,
			Message: fmt.Sprintf("no account of pool %s serves model %q", h.cfg.Account, j.p.Model)}, asynq.SkipRetry)
	}
	for round := 0; ; round++ {
		if round > 0 && time.Since(started) > 2*h.cfg.MaxInlineWait {
			// Accounts paused and resumed under our feet, turns taken as
			// soon as found: let the slot take other work for a moment.
			return nil, quota.Reservation{}, waited, &backoff.Deferral{Delay: time.Second, Reason: "pool busy; asking again"}
		}
		cands, paused := h.candidates(j)
		if len(cands) == 0 {
			if h.waitPoolPause(ctx, paused, nil, started) {
				waited = true
				continue
			}
			return nil, quota.Reservation{}, waited, h.poolWait(paused, nil)
		}
		names := make([]string, len(cands))
		for i, c := range cands {
			names[i] = c.name
		}
		hs, err := h.peek.Peek(ctx, names, j.input, j.maxOut, opts...)
		if err != nil {
			return nil, quota.Reservation{}, waited, fmt.Errorf("quota peek: %w", err)
		}
		pk := choose(cands, hs, h.cfg.MaxInlineWait, h.cfg.Clock.Now())
		wait := pk.wait
		switch {
		case pk.route != nil:
			res, st, err := h.reservePooled(ctx, j, pk, opts)
			if st.done {
				return pk.route, res, waited || st.waited, err
			}
			waited = waited || st.waited
			if st.again {
				continue
			}
			wait = st.wait
		case pk.tooLarge:
			return nil, quota.Reservation{}, waited, tooLarge(j.input, j.maxOut, "every account's")
		case !pk.soon:
			if h.waitPoolPause(ctx, paused, hs, started) {
				waited = true
				continue
			}
			return nil, quota.Reservation{}, waited, h.poolWait(paused, hs)
		case pk.wait > h.cfg.MaxInlineWait:
			return nil, quota.Reservation{}, waited, &backoff.Deferral{Delay: h.comeBackIn(pk.wait), Reason: "waiting for quota headroom on every account of the pool"}
		}
		if time.Since(started) > h.cfg.MaxInlineWait {
			return nil, quota.Reservation{}, waited, &backoff.Deferral{Delay: h.comeBackIn(wait), Reason: "waiting for quota headroom on every account of the pool"}
		}
		waited = true
		if err := h.sleep(ctx, max(wait, time.Millisecond)); err != nil && ctx.Err() != nil {
			return nil, quota.Reservation{}, waited, err
		}
	}
}

// poolStep is what a reservation on the account the pool chose came to.
type poolStep struct {
	done   bool          // the reservation (or the error) ends admission
	again  bool          // ask the pool again at once
	waited bool          // a scheduled turn was waited for, or given back
	wait   time.Duration // else: ask the pool again after this
}

// reservePooled reserves the task's cost on the account pk chose, for a
// turn no later than pk.limit, and waits for that turn.
func (h *Handler) reservePooled(ctx context.Context, j *job, pk pick, opts []quota.ReserveOption) (quota.Reservation, poolStep, error) {
	a := pk.route
	d, err := a.lim.ReserveRequest(ctx, a.name, j.input, j.maxOut, append(opts, quota.WithScheduleLimit(pk.limit))...)
	switch {
	case errors.Is(err, quota.ErrCostExceedsLimit):
		j.refuse(a.name) // too large for this account; maybe not for another
		return quota.Reservation{}, poolStep{again: true}, nil
	case err != nil:
		return quota.Reservation{}, poolStep{done: true}, fmt.Errorf("quota reserve: %w", err)
	case d.OK:
		h.stall.admitted(time.Now(), h.log)
		if d.Wait <= 0 {
			return d.Reservation, poolStep{done: true}, nil
		}
		res, err := h.awaitTurn(ctx, a, d.Reservation, d.Wait)
		switch {
		case errors.Is(err, errAdmitAgain):
			return quota.Reservation{}, poolStep{again: true, waited: true}, nil
		case err != nil && ctx.Err() == nil:
			// The account was paused while we waited: ask the pool again.
			return quota.Reservation{}, poolStep{again: true, waited: true}, nil
		}
		return res, poolStep{done: true, waited: true}, err
	case d.DailyExhausted:
		_ = h.dailyExhausted(ctx, a, d.DailyResetAt)
		return quota.Reservation{}, poolStep{again: true}, nil
	case d.Paused, d.ModelPaused:
		return quota.Reservation{}, poolStep{again: true}, nil // the next peek sees it
	case d.FairShare && h.yields.Allow():
		// As for one account (admit): step aside so the slot can take
		// other work, possibly the tenant that is behind.
		return quota.Reservation{}, poolStep{done: true}, &backoff.Deferral{Delay: max(d.Wait, time.Second), Reason: waitReason(d)}
	}
	// The turn was taken meanwhile: ask the pool again once the next
	// account's turn (the limit) or this one's is due.
	return quota.Reservation{}, poolStep{wait: min(d.Wait, pk.limit)}, nil
}

// refuse marks account as refusing this task for good (failover).
func (j *job) refuse(account string) {
	if j.refused == nil {
		j.refused = make(map[string]bool)
	}
	j.refused[account] = true
}

// candidates are the pool's accounts that serve the task's model, have not
// refused it, and are not paused past the scheduling window as far as this
// worker knows; paused are the pauses of those that are.
func (h *Handler) candidates(j *job) (cands []*target, paused []quota.Headroom) {
	for _, r := range h.routes {
		if j.refused[r.name] || !r.serves(j.p.Model) {
			continue
		}
		if rec, ok := h.gate.Local(r.name); ok && (rec.Until.IsZero() || rec.Until.Sub(h.cfg.Clock.Now()) > h.cfg.MaxInlineWait) {
			paused = append(paused, quota.Headroom{Account: r.name, Paused: true, PausedUntil: rec.Until})
			continue
		}
		// A pause that ends within the window (a 429's precise wait) keeps
		// the account in the running: its tier waits for it (choose).
		cands = append(cands, r)
	}
	return cands, paused
}

// poolWait is the wait of a task no account of the pool can take now: until
// the first of their pauses (wholly or for the model) or budget days ends.
// Accounts that refused the task in this attempt are paused by the gate
// already, so the task finds them so when it comes back.
func (h *Handler) poolWait(paused, peeked []quota.Headroom) error {
	const reason = "every account of the pool that serves the model is paused"
	switch first, indefinite := firstEnd(paused, peeked); {
	case !first.IsZero():
		return h.pausedWait(first, reason)
	case indefinite:
		return h.pausedWait(time.Time{}, reason)
	}
	return &backoff.Deferral{Delay: h.cfg.ManualPausePoll, Reason: "no account of the pool can take the task now"}
}

// waitPoolPause waits out the first pause of the pool's accounts when it
// ends within MaxInlineWait of started (a rate limit's precise wait), and
// reports whether it did: the task then asks the pool again in this slot.
func (h *Handler) waitPoolPause(ctx context.Context, paused, peeked []quota.Headroom, started time.Time) bool {
	first, _ := firstEnd(paused, peeked)
	return !first.IsZero() && h.waitShortPause(ctx, first, started)
}

// firstEnd is the first end of the pauses (wholly or for the model) and
// budget days among hs, and whether one of them is indefinite.
func firstEnd(hss ...[]quota.Headroom) (first time.Time, indefinite bool) {
	for _, hs := range hss {
		for _, p := range hs {
			var until time.Time
			switch {
			case p.Paused, p.ModelPaused:
				until = p.PausedUntil
			case p.DailyExhausted:
				until = p.DailyResetAt
			default:
				continue
			}
			if until.IsZero() {
				indefinite = true
				continue
			}
			if first.IsZero() || until.Before(first) {
				first = until
			}
		}
	}
	return first, indefinite
}

// pick is choose's answer.
type pick struct {
	route *target       // the account to reserve on (nil: none within the window)
	limit time.Duration // the latest turn to accept there
	wait  time.Duration // without route: the soonest any account could take it
	soon  bool          // some account can take it after wait
	// tooLarge: every account refuses the cost as too large.
	tooLarge bool
}

// choose picks the account for a request from the peek hs of cands (both in
// tier order). See admitPool.
func choose(cands []*target, hs []quota.Headroom, window time.Duration, now time.Time) pick {
	var pk pick
	large := 0
	for _, h := range hs {
		if h.TooLarge {
			large++
		}
		if h.Fits || h.Probe || h.TenantLimited {
			if !pk.soon || h.Wait < pk.wait {
				pk.wait = h.Wait
			}
			pk.soon = true
		}
	}
	pk.tooLarge = large == len(hs) && large > 0
	for lo := 0; lo < len(cands); {
		hi := lo
		for hi < len(cands) && cands[hi].tier == cands[lo].tier {
			hi++
		}
		if r, limit, ok := chooseInTier(cands[lo:hi], hs[lo:hi], window); ok {
			pk.route, pk.limit = r, limit
			return pk
		}
		if w, ok := held(hs[lo:hi], window, now); ok {
			// An account of the tier holds the request for a moment (a
			// short pause, its cold-start probe, the tenant's budget
			// there): wait for it rather than spill to a lower tier.
			pk.wait, pk.soon = w, true
			return pk
		}
		lo = hi
	}
	return pk
}

// held reports the shortest wait, within window, of the tier's accounts
// that hold the request for a moment without refusing it: a pause that ends
// within the window (a 429's precise wait), a cold-start probe in flight,
// or the tenant's budget there.
func held(hs []quota.Headroom, window time.Duration, now time.Time) (time.Duration, bool) {
	found, wait := false, time.Duration(0)
	for _, h := range hs {
		w, ok := h.Wait, h.Probe || h.TenantLimited
		if (h.Paused || h.ModelPaused) && !h.PausedUntil.IsZero() {
			w, ok = max(h.PausedUntil.Sub(now), 0)+ScheduleSlack, true
		}
		if ok && w <= window && (!found || w < wait) {
			found, wait = true, w
		}
	}
	return wait, found
}

// chooseInTier picks among one tier's accounts that can admit the request
// within window: the soonest, or among those about as soon (NearTie), one
// at random weighted by weight and free headroom. limit is the latest turn
// worth taking on it: the next-best account's, or the window.
func chooseInTier(cands []*target, hs []quota.Headroom, window time.Duration) (*target, time.Duration, bool) {
	best := -1
	for i, h := range hs {
		if h.Fits && h.Wait <= window && (best < 0 || h.Wait < hs[best].Wait) {
			best = i
		}
	}
	if best < 0 {
		return nil, 0, false
	}
	var near []int
	total := 0.0
	for i, h := range hs {
		if h.Fits && h.Wait <= window && h.Wait <= hs[best].Wait+NearTie {
			near = append(near, i)
			total += share(cands[i], h)
		}
	}
	chosen := near[0]
	if len(near) > 1 {
		x := rand.Float64() * total
		for _, i := range near {
			if x -= share(cands[i], hs[i]); x < 0 {
				chosen = i
				break
			}
		}
	}
	limit := window
	for i, h := range hs {
		if i != chosen && h.Fits && h.Wait <= window {
			limit = min(limit, max(h.Wait, hs[chosen].Wait)+NearTie)
		}
	}
	return cands[chosen], limit, true
}

// share is an account's weight in a near tie: its configured weight times
// its free headroom (at least a little, so that a drained account keeps a
// chance and weights still count).
func share(r *target, h quota.Headroom) float64 {
	return float64(r.weight) * max(h.Room(), 0.02)
}
