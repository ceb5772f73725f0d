package worker

import (
	"context"
	"sync"
	"time"

	"github.com/promptq/promptq/quota/backoff"
)

const (
	// MaxInlineRetries is how many times one task is sent again inside the
	// same ProcessTask after a rate limit whose wait is short (at most
	// HandlerConfig.MaxInlineWait); past it the task goes back to asynq.
	MaxInlineRetries = 2

	// ForbiddenModels and ForbiddenWindow decide when 403s stop being one
	// task's problem: 403s for this many different models within the window
	// (seen by one worker process) pause the account.
	ForbiddenModels = 3
	ForbiddenWindow = 10 * time.Minute
)

// retryInline reports whether a rate-limited task should wait out its
// pause here and run again in this slot rather than go back to asynq, whose
// retry delays are rounded up to whole seconds: a 51 ms wait would cost the
// task a second, and a slot that holds it 51 ms costs far less. Only with
// quota control (the pause gate and a fresh admission guard the retry) and
// without adaptive concurrency (the retry would take a second permit).
func (h *Handler) retryInline(j *job, c *backoff.Error, wait time.Duration) bool {
	return h.cfg.QuotaControl && h.conc == nil && c.Kind == backoff.KindRateLimit && !c.Permanent &&
		wait > 0 && wait <= h.cfg.MaxInlineWait && j.inline < MaxInlineRetries
}

// sleepUntil waits until t on the injected clock's terms (as a duration
// from now), or until ctx ends. Pause announcements do not end it.
func (h *Handler) sleepUntil(ctx context.Context, t time.Time) error {
	timer := time.NewTimer(t.Sub(h.cfg.Clock.Now()))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// forbiddenTracker remembers, per worker process and account, which models
// drew a 403 lately. One 403 is one task's problem (no access to that
// model); 403s for several different models mean the account itself is
// refused. The zero value is ready to use.
type forbiddenTracker struct {
	mu   sync.Mutex
	seen map[string]map[string]time.Time // account -> model -> last 403
}

// add records a 403 of account for model at now and reports whether
// ForbiddenModels different models drew one there within ForbiddenWindow.
func (f *forbiddenTracker) add(account, model string, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen == nil {
		f.seen = make(map[string]map[string]time.Time)
	}
	seen := f.seen[account]
	if seen == nil {
		seen = make(map[string]time.Time)
		f.seen[account] = seen
	}
	seen[model] = now
	for m, at := range seen {
		if now.Sub(at) > ForbiddenWindow {
			delete(seen, m)
		}
	}
	return len(seen) >= ForbiddenModels
}
