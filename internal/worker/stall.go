package worker

import (
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// StallAfter is how long admissions may be held by something other than a
// shortage of headroom (the cold-start probe waiting on a call whose
// outcome never settled) before the worker says so in its log.
const StallAfter = 5 * time.Second

// stallWatch notices an account whose admissions are held although the
// buckets have headroom, so that such a state is never silent: the first
// refusal starts the clock, an admission stops it, and past StallAfter one
// warning is logged (and one line when admissions resume).
type stallWatch struct {
	mu     sync.Mutex
	since  time.Time // first refusal of the current stall; zero = none
	warned bool
}

// held records a refusal for reason at now.
func (s *stallWatch) held(now time.Time, log zerolog.Logger, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.since.IsZero() {
		s.since = now
	}
	if !s.warned && now.Sub(s.since) >= StallAfter {
		s.warned = true
		log.Warn().Int64("held_ms", now.Sub(s.since).Milliseconds()).Str("reason", reason).
			Msg("admissions held although the buckets have headroom")
	}
}

// admitted records an admission: any stall is over.
func (s *stallWatch) admitted(now time.Time, log zerolog.Logger) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.warned {
		log.Info().Int64("held_ms", now.Sub(s.since).Milliseconds()).Msg("admissions resumed")
	}
	s.since, s.warned = time.Time{}, false
}
