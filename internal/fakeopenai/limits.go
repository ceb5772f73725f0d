package fakeopenai

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"
)

// Limits are the per-minute limits in force (0 = unlimited).
type Limits struct {
	RPM int `json:"rpm"`
	TPM int `json:"tpm"`
}

// SetLimits changes the limits at run time, as a provider that lowers an
// account's tier does. Each bucket keeps its level, cut to the new capacity
// (so halving a limit never hands out tokens); a bucket that was unlimited
// starts full; 0 makes a limit unlimited. The burst (capacity as refill
// time) is Config.Burst. Negative values are an error.
func (s *Server) SetLimits(l Limits) error {
	if l.RPM < 0 || l.TPM < 0 {
		return fmt.Errorf("fakeopenai: limits must be >= 0 (0 = unlimited), got rpm %d tpm %d", l.RPM, l.TPM)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Clock()
	s.requests = resize(s.requests, l.RPM, s.cfg.Burst, 1, now)
	s.tokens = resize(s.tokens, l.TPM, s.cfg.Burst, 0, now)
	return nil
}

// resize returns b with a new limit, its level brought up to now and cut to
// the new capacity.
func resize(b *bucket, limit int, burst time.Duration, minCapacity float64, now time.Time) *bucket {
	nb := newBucket(limit, burst, minCapacity)
	if nb == nil || b == nil {
		return nb
	}
	b.refill(now)
	nb.level, nb.last = math.Min(b.level, nb.capacity), b.last
	return nb
}

// Limits returns the limits in force.
func (s *Server) Limits() Limits {
	s.mu.Lock()
	defer s.mu.Unlock()
	var l Limits
	if s.requests != nil {
		l.RPM = s.requests.limit
	}
	if s.tokens != nil {
		l.TPM = s.tokens.limit
	}
	return l
}

// Sample is the fake's accounting at one instant: cumulative counters and
// the bucket levels. Two samples give the work the limiter admitted
// between them; the bench measures utilisation from them.
type Sample struct {
	At time.Time `json:"at"`
	Limits
	// Requests, Admitted, RateLimited and TokensCharged are Stats' counters.
	Requests      int `json:"requests"`
	Admitted      int `json:"admitted"`
	RateLimited   int `json:"rate_limited"`
	TokensCharged int `json:"tokens_charged"`
	// RequestLevel and TokenLevel are the buckets' levels at At (0 when unlimited).
	RequestLevel float64 `json:"request_level"`
	TokenLevel   float64 `json:"token_level"`
	// LastAdmitAt is when the last request was admitted (zero if none).
	LastAdmitAt time.Time `json:"last_admit_at"`
}

// Sample returns the accounting now, taken under one lock.
func (s *Server) Sample() Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Clock()
	sm := Sample{At: now, Requests: s.stats.Requests, Admitted: s.stats.Admitted,
		RateLimited: s.stats.RateLimited, TokensCharged: s.stats.TokensCharged, LastAdmitAt: s.lastAdmit}
	if b := s.requests; b != nil {
		b.refill(now)
		sm.RPM, sm.RequestLevel = b.limit, b.level
	}
	if b := s.tokens; b != nil {
		b.refill(now)
		sm.TPM, sm.TokenLevel = b.limit, b.level
	}
	return sm
}

// serveLimits handles GET and POST /_fake/limits: the body
// {"rpm":N,"tpm":N} replaces both limits (a field left out is unchanged).
func (s *Server) serveLimits(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		var req struct {
			RPM *int `json:"rpm"`
			TPM *int `json:"tpm"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(&req); err != nil {
			http.Error(w, "bad JSON: "+err.Error(), http.StatusBadRequest)
			return
		}
		l := s.Limits()
		if req.RPM != nil {
			l.RPM = *req.RPM
		}
		if req.TPM != nil {
			l.TPM = *req.TPM
		}
		if err := s.SetLimits(l); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	writeJSON(w, http.StatusOK, s.Limits())
}
