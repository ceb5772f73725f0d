package fakeopenai

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// admit debits one request and the call's charge (input charge, with its
// noise drawn now, plus the output allowance) from the buckets, or, when
// either cannot pay, debits nothing and returns the 429 to send and how long
// to wait. The header values are returned either way.
func (s *Server) admit(c *call) ([]header, time.Duration, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Clock()
	u := 0.0
	if s.cfg.ChargeNoise > 0 {
		u = 2*s.noise.Float64() - 1
	}
	cost := noisy(c.chargeBase, s.cfg.ChargeNoise, u) + c.outputAllowance()
	for _, b := range []struct {
		b      *bucket
		n      int
		kind   string
		window string
	}{{s.requests, 1, "requests", "requests per min (RPM)"}, {s.tokens, cost, "tokens", "tokens per min (TPM)"}} {
		if b.b == nil {
			continue
		}
		b.b.refill(now)
		if wait := b.b.wait(float64(b.n)); wait > 0 {
			s.stats.RateLimited++
			used := int(b.b.capacity - b.b.level + 0.999999)
			msg := fmt.Sprintf("Rate limit reached for %s in organization org-fake on %s: Limit %d, Used %d, Requested %d. Please try again in %s. Visit https://platform.openai.com/account/rate-limits to learn more.",
				c.model, b.window, b.b.limit, used, b.n, wait)
			if float64(b.n) > b.b.capacity {
				// Never satisfiable: OpenAI words this one differently.
				msg = fmt.Sprintf("Request too large for %s in organization org-fake on %s: Limit %d, Requested %d. The input or output tokens must be reduced in order to run successfully. Visit https://platform.openai.com/account/rate-limits to learn more.",
					c.model, b.window, b.b.limit, b.n)
			}
			return s.rateHeadersLocked(now), wait, &apiError{
				status: http.StatusTooManyRequests, Message: msg,
				Type: b.kind, Code: strp("rate_limit_exceeded"),
			}
		}
	}
	if s.requests != nil {
		s.requests.level--
	}
	if s.tokens != nil {
		s.tokens.level -= float64(cost)
	}
	s.stats.TokensCharged += cost
	s.stats.Admitted++
	s.lastAdmit = now
	return s.rateHeadersLocked(now), 0, nil
}

// header is one response header.
type header struct{ key, value string }

// rateHeaders returns the x-ratelimit-* headers for the bucket levels now.
func (s *Server) rateHeaders() []header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rateHeadersLocked(s.cfg.Clock())
}

func (s *Server) rateHeadersLocked(now time.Time) []header {
	var hs []header
	for _, b := range []struct {
		b    *bucket
		kind string
	}{{s.requests, "requests"}, {s.tokens, "tokens"}} {
		if b.b == nil {
			continue
		}
		b.b.refill(now)
		st := b.b.snapshot()
		hs = append(hs,
			header{"x-ratelimit-limit-" + b.kind, strconv.Itoa(st.limit)},
			header{"x-ratelimit-remaining-" + b.kind, strconv.Itoa(st.remaining)},
			header{"x-ratelimit-reset-" + b.kind, formatReset(st.reset)})
	}
	return hs
}
