package fakeopenai

import (
	"maps"
	"time"
)

// Stats counts what the fake has seen since it started or since ResetStats.
// It is served as JSON by GET /_fake/stats.
type Stats struct {
	// Requests is every API POST received (responses and chat completions).
	Requests int `json:"requests"`
	// OK is the number of complete successful answers.
	OK int `json:"ok"`
	// RateLimited is the number of 429 rate_limit_exceeded answers.
	RateLimited int `json:"rate_limited"`
	// QuotaErrors is the number of 429 insufficient_quota answers.
	QuotaErrors int `json:"quota_errors"`
	// ServerErrors is the number of 5xx answers sent in ModeServerError.
	ServerErrors int `json:"server_errors"`
	// SlowDowns is the number of 503 slow_down answers sent in ModeSlowDown.
	SlowDowns int `json:"slow_downs"`
	// Resets is the number of connections closed without an answer (ModeReset).
	Resets int `json:"resets"`
	// Truncated is the number of answers cut short (ModeTruncate).
	Truncated int `json:"truncated"`
	// Canceled is the number of admitted requests whose client went away
	// during the latency.
	Canceled int `json:"canceled"`
	// BadRequests is the number of 400 and 404 answers.
	BadRequests int `json:"bad_requests"`
	// AuthErrors is the number of 401 answers.
	AuthErrors int `json:"auth_errors"`
	// InFlight is the number of API requests being processed now.
	InFlight int `json:"in_flight"`
	// MaxInFlight is the highest InFlight seen.
	MaxInFlight int `json:"max_in_flight"`
	// Admitted is the number of requests that passed the rate limits (and
	// were charged).
	Admitted int `json:"admitted"`
	// CallsAfterAnswered counts requests carrying a task ID that had
	// already been answered successfully: duplicate provider calls.
	CallsAfterAnswered int `json:"calls_after_answered"`
	// TokensCharged is the sum of TPM costs debited at admission
	// (input estimate + max output tokens).
	TokensCharged int `json:"tokens_charged"`
	// InputTokens is the sum of usage input tokens of successful answers.
	InputTokens int `json:"input_tokens"`
	// OutputTokens is the sum of usage output tokens of successful answers.
	OutputTokens int `json:"output_tokens"`
	// ByTask maps the X-Promptq-Task-Id request header to the number of API
	// requests that carried it.
	ByTask map[string]int `json:"by_task"`
	// FirstQuotaErrorAt is when the first insufficient_quota 429 was sent
	// (RFC3339Nano), or empty.
	FirstQuotaErrorAt string `json:"first_quota_error_at"`
	// InFlightAtFirstQuotaError is how many other requests were being
	// processed when the first insufficient_quota 429 was sent.
	InFlightAtFirstQuotaError int `json:"in_flight_at_first_quota_error"`
	// RequestsAfterFirstQuotaError counts requests that arrived after the
	// first insufficient_quota 429 while the quota mode was still on: the
	// requests that a well-behaved client should not have sent.
	RequestsAfterFirstQuotaError int `json:"requests_after_first_quota_error"`
	// FirstRequestAt is when the first API request arrived (RFC3339Nano), or empty.
	FirstRequestAt string `json:"first_request_at"`
	// LastOKAt is when the last successful answer was completed (RFC3339Nano), or empty.
	LastOKAt string `json:"last_ok_at"`
}

// clone returns a deep copy of s.
func (s Stats) clone() Stats {
	s.ByTask = maps.Clone(s.ByTask)
	if s.ByTask == nil {
		s.ByTask = map[string]int{}
	}
	return s
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.clone()
}

// ResetStats clears the counters (but not InFlight, which tracks live
// requests). Rate-limit buckets and the mode are kept.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = Stats{ByTask: map[string]int{}, InFlight: s.stats.InFlight, MaxInFlight: s.stats.InFlight}
	s.answered = map[string]bool{}
}
