package backoff

import (
	"errors"
	"math"
	"math/rand/v2"
	"time"
)

// DefaultJitter is the jitter of every DefaultPolicy: ±10% of the delay.
const DefaultJitter = 0.1

// Policy is the exponential backoff of one Kind: the first retry waits
// about Base, each later one twice as long, never more than Cap (unless the
// provider asked for longer).
type Policy struct {
	Base, Cap time.Duration
	// Jitter spreads each delay by ±Jitter of itself (0..1; 0 gives exact
	// delays) so that tasks failing together do not retry together.
	Jitter float64
}

// DefaultPolicy returns the backoff of a kind, with DefaultJitter; see the
// package doc for the table. An unrecognised kind gets KindUnknown's policy.
func DefaultPolicy(kind Kind) Policy {
	p := defaultRange(kind)
	p.Jitter = DefaultJitter
	return p
}

// defaultRange is DefaultPolicy without the jitter.
func defaultRange(kind Kind) Policy {
	switch kind {
	case KindRateLimit, KindNetwork:
		return Policy{Base: time.Second, Cap: time.Minute}
	case KindQuota:
		// The account's pause decides the real wait (the worker sets the
		// error's RetryAfter to the pause's end, PAUSE_DURATION_HOURS); this
		// only spaces retries when nothing paused the account (quota control
		// off). IsFailure is false, so the attempt stays 0 and the base is
		// what such a task waits: 30 s keeps a run without quota control
		// responsive once credit is back, at one request per task per 30 s.
		return Policy{Base: 30 * time.Second, Cap: time.Hour}
	case KindServer:
		return Policy{Base: time.Second, Cap: 30 * time.Second}
	case KindInvalid, KindAuth, KindForbidden:
		// Permanent: normally never retried; a sane range in case they are.
		return Policy{Base: time.Second, Cap: time.Minute}
	default:
		return Policy{Base: 2 * time.Second, Cap: 5 * time.Minute}
	}
}

// Delay returns how long to wait before retry number attempt (0 is the
// first retry): Base*2^attempt capped at Cap, jittered by ±Jitter as
// d*(1+Jitter*(2r-1)) with r uniform in [0,1), then kept within
// [retryAfter, max(Cap, retryAfter)]. A provider's retryAfter is therefore
// always honoured, even beyond Cap; without one the result never exceeds
// Cap. A Base or Cap <= 0 takes the value from DefaultPolicy(KindUnknown).
// Negative attempts count as 0; huge ones saturate at Cap.
func (p Policy) Delay(attempt int, retryAfter time.Duration) time.Duration {
	return p.delay(attempt, retryAfter, rand.Float64())
}

// delay is Delay with the random draw r given, for tests.
func (p Policy) delay(attempt int, retryAfter time.Duration, r float64) time.Duration {
	def := DefaultPolicy(KindUnknown)
	base, cap := p.Base, p.Cap
	if base <= 0 {
		base = def.Base
	}
	if cap <= 0 {
		cap = def.Cap
	}
	base = min(base, cap)
	d := base
	for i := 0; i < attempt && d < cap; i++ {
		if d > cap/2 {
			d = cap
			break
		}
		d *= 2
	}
	d = min(d, cap)

	jitter := p.Jitter
	if math.IsNaN(jitter) || jitter < 0 {
		jitter = 0
	}
	jitter = min(jitter, 1)
	f := float64(d) * (1 + jitter*(2*r-1))

	lo := max(retryAfter, 0)
	hi := max(cap, lo)
	switch {
	case f >= float64(hi):
		return hi
	case f <= float64(lo):
		return lo
	}
	return time.Duration(f)
}

// RetryDelay is what asynq's RetryDelayFunc calls (attempt is asynq's retry
// count, 0 for the first retry):
//   - a *Deferral waits exactly its Delay;
//   - an *Error backs off with DefaultPolicy(kind) and its RetryAfter;
//   - any other error backs off with KindUnknown's policy.
//
// The result is rounded up to whole seconds (minimum 1s) because asynq
// schedules retries at one-second precision and would otherwise run a task
// up to a second before a provider's retry-after.
func RetryDelay(attempt int, err error) time.Duration {
	var w *Deferral
	if errors.As(err, &w) && w != nil {
		return ceilSecond(w.Delay)
	}
	kind, after := KindUnknown, time.Duration(0)
	var e *Error
	if errors.As(err, &e) && e != nil {
		kind, after = e.Kind, e.RetryAfter
	}
	return ceilSecond(DefaultPolicy(kind).Delay(attempt, after))
}

// ceilSecond rounds d up to a whole number of seconds, at least one.
func ceilSecond(d time.Duration) time.Duration {
	if d <= time.Second {
		return time.Second
	}
	if r := d % time.Second; r != 0 {
		if d > math.MaxInt64-time.Second {
			return d - r
		}
		d += time.Second - r
	}
	return d
}

// IsFailure is what asynq's IsFailure option calls: false for a *Deferral and for
// an *Error of kind rate_limit or quota (waiting on the provider is not the
// task's fault, so it must not eat the task's retry budget), true for any
// other error, false for nil.
func IsFailure(err error) bool {
	if err == nil {
		return false
	}
	var w *Deferral
	if errors.As(err, &w) {
		return false
	}
	var e *Error
	if errors.As(err, &e) && e != nil && (e.Kind == KindRateLimit || e.Kind == KindQuota) {
		return false
	}
	return true
}
