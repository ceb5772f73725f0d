package backoff

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"
)

func TestPolicyDelayDeterministic(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name                  string
		attempt               int
		retryAfter, base, cap time.Duration
		jitter, r             float64
		want                  time.Duration
	}{
		{"first retry", 0, 0, s, 60 * s, 0, 0.5, s},
		{"doubles", 3, 0, s, 60 * s, 0, 0.5, 8 * s},
		{"capped", 10, 0, s, 60 * s, 0, 0.5, 60 * s},
		{"huge attempt", 1000, 0, s, 60 * s, 0, 0.5, 60 * s},
		{"max int attempt", math.MaxInt, 0, s, 30 * s, 0, 0.5, 30 * s},
		{"negative attempt", -5, 0, s, 60 * s, 0, 0.5, s},
		{"huge cap no overflow", 1000, 0, s, math.MaxInt64, 0, 0.5, math.MaxInt64},
		{"huge cap full jitter up", 1000, 0, s, math.MaxInt64, 1, 0.999, math.MaxInt64},
		{"base above cap", 0, 0, 90 * s, 60 * s, 0, 0.5, 60 * s},
		{"zero range takes unknown's", 2, 0, 0, 0, 0, 0.5, 8 * s},
		{"negative range takes unknown's", 10, 0, -1, -1, 0, 0.5, 5 * time.Minute},
		{"jitter low end", 2, 0, s, 60 * s, 0.1, 0, 3600 * time.Millisecond},
		{"jitter high end", 2, 0, s, 60 * s, 0.1, 1, 4400 * time.Millisecond},
		{"jitter above cap clamped", 10, 0, s, 60 * s, 0.1, 0.99, 60 * s},
		{"jitter > 1 treated as 1", 0, 0, s, 60 * s, 5, 0, 0},
		{"NaN jitter treated as 0", 0, 0, s, 60 * s, math.NaN(), 0, s},
		{"negative jitter treated as 0", 0, 0, s, 60 * s, -1, 0, s},
		{"retry-after raises", 0, 20 * s, s, 60 * s, 0.1, 0, 20 * s},
		{"retry-after beyond cap honoured", 0, 5 * time.Minute, s, 30 * s, 0.1, 0.99, 5 * time.Minute},
		{"retry-after below backoff ignored", 3, 2 * s, s, 60 * s, 0, 0.5, 8 * s},
		{"negative retry-after ignored", 0, -10 * s, s, 60 * s, 0, 0.5, s},
		{"max retry-after", 0, math.MaxInt64, s, 60 * s, 1, 0.999, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Policy{Base: tt.base, Cap: tt.cap, Jitter: tt.jitter}.delay(tt.attempt, tt.retryAfter, tt.r)
			if got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPolicyDelayRandomBounds(t *testing.T) {
	const s = time.Second
	for _, kind := range []Kind{KindRateLimit, KindQuota, KindServer, KindNetwork, KindUnknown} {
		p := DefaultPolicy(kind)
		for _, after := range []time.Duration{0, 3 * s, 2 * p.Cap} {
			for attempt := -1; attempt < 70; attempt++ {
				// Expected centre before jitter.
				centre := p.Cap
				if attempt < 20 {
					centre = min(p.Base<<max(attempt, 0), p.Cap)
				}
				lo := max(time.Duration(float64(centre)*0.9), after)
				hi := max(min(time.Duration(float64(centre)*1.1), p.Cap), after)
				for range 50 {
					got := p.Delay(attempt, after)
					if got < lo || got > hi {
						t.Fatalf("%s attempt %d retryAfter %v: %v outside [%v, %v]", kind, attempt, after, got, lo, hi)
					}
					if after <= p.Cap && got > p.Cap {
						t.Fatalf("%s: %v above cap %v", kind, got, p.Cap)
					}
					if got < after {
						t.Fatalf("%s: %v below retry-after %v", kind, got, after)
					}
				}
			}
		}
	}
}

func TestPolicyDelayJitterSpreads(t *testing.T) {
	seen := map[time.Duration]bool{}
	for range 100 {
		seen[Policy{Base: time.Second, Cap: time.Minute, Jitter: 0.1}.Delay(3, 0)] = true
	}
	if len(seen) < 10 {
		t.Fatalf("jitter produced only %d distinct delays in 100 draws", len(seen))
	}
}

func TestDefaultPolicy(t *testing.T) {
	tests := []struct {
		kind      Kind
		base, cap time.Duration
	}{
		{KindRateLimit, time.Second, time.Minute},
		{KindQuota, 30 * time.Second, time.Hour},
		{KindServer, time.Second, 30 * time.Second},
		{KindNetwork, time.Second, time.Minute},
		{KindUnknown, 2 * time.Second, 5 * time.Minute},
		{KindInvalid, time.Second, time.Minute},
		{KindAuth, time.Second, time.Minute},
		{Kind("martian"), 2 * time.Second, 5 * time.Minute},
	}
	for _, tt := range tests {
		if got := DefaultPolicy(tt.kind); got != (Policy{tt.base, tt.cap, DefaultJitter}) {
			t.Errorf("DefaultPolicy(%s) = %+v, want %v..%v", tt.kind, got, tt.base, tt.cap)
		}
	}
}

func TestRetryDelay(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name    string
		attempt int
		err     error
		lo, hi  time.Duration
	}{
		{"wait rounded up", 0, &Deferral{Delay: 1500 * time.Millisecond}, 2 * s, 2 * s},
		{"wait whole seconds kept", 7, &Deferral{Delay: 3 * s}, 3 * s, 3 * s},
		{"wait minimum 1s", 0, &Deferral{Delay: 20 * time.Millisecond}, s, s},
		{"wait zero", 0, &Deferral{}, s, s},
		{"wait wrapped", 0, fmt.Errorf("gate: %w", &Deferral{Delay: 90 * s, Reason: "paused"}), 90 * s, 90 * s},
		{"wait huge", 0, &Deferral{Delay: math.MaxInt64}, math.MaxInt64 - s, math.MaxInt64},
		{"rate limit first retry", 0, &Error{Kind: KindRateLimit}, s, 2 * s},
		{"rate limit later retry", 3, &Error{Kind: KindRateLimit}, 8 * s, 9 * s}, // 7.2s..8.8s
		{"rate limit retry-after rounded up", 0, &Error{Kind: KindRateLimit, RetryAfter: 8500 * time.Millisecond}, 9 * s, 10 * s},
		{"rate limit long retry-after honoured", 0, &Error{Kind: KindRateLimit, RetryAfter: 10 * time.Minute}, 10 * time.Minute, 10 * time.Minute},
		{"quota", 0, &Error{Kind: KindQuota}, 27 * s, 33 * s},
		{"server capped", 20, &Error{Kind: KindServer}, 27 * s, 30 * s},
		{"wrapped error", 1, fmt.Errorf("x: %w", &Error{Kind: KindNetwork}), 2 * s, 3 * s}, // 1.8s..2.2s
		{"plain error uses unknown policy", 2, errors.New("boom"), 8 * s, 9 * s},           // 7.2s..8.8s
		{"plain error capped", 100, errors.New("boom"), 270 * s, 300 * s},
		{"nil error", 0, nil, 2 * s, 3 * s}, // unknown: 1.8s..2.2s
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 20 {
				got := RetryDelay(tt.attempt, tt.err)
				if got < tt.lo || got > tt.hi {
					t.Fatalf("RetryDelay = %v, want in [%v, %v]", got, tt.lo, tt.hi)
				}
				if got < math.MaxInt64-s && got%s != 0 {
					t.Fatalf("RetryDelay = %v, not whole seconds", got)
				}
			}
		})
	}
}

func TestIsFailure(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"wait", &Deferral{Delay: time.Second}, false},
		{"wrapped wait", fmt.Errorf("x: %w", &Deferral{}), false},
		{"rate limit", &Error{Kind: KindRateLimit}, false},
		{"quota", fmt.Errorf("x: %w", &Error{Kind: KindQuota}), false},
		{"server", &Error{Kind: KindServer}, true},
		{"network", &Error{Kind: KindNetwork}, true},
		{"invalid", &Error{Kind: KindInvalid, Permanent: true}, true},
		{"auth", &Error{Kind: KindAuth, Permanent: true}, true},
		{"unknown", &Error{Kind: KindUnknown}, true},
		{"plain", errors.New("boom"), true},
	}
	for _, tt := range tests {
		if got := IsFailure(tt.err); got != tt.want {
			t.Errorf("IsFailure(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestErrorStrings(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&Error{Kind: KindAuth, StatusCode: 401, Code: "invalid_api_key", Permanent: true, Message: "sk-secret"},
			"auth: status 401 (invalid_api_key), permanent"},
		{&Error{Kind: KindNetwork, Err: errors.New("connection reset")}, "network: connection reset"},
		{&Error{Kind: KindServer, StatusCode: 503, RetryAfter: 30 * time.Second}, "server: status 503, retry after 30s"},
		{&Deferral{Delay: 2 * time.Second, Reason: "tokens bucket empty"}, "wait 2s: tokens bucket empty"},
		{&Error{Kind: KindUnknown, Message: "handler panic: x"}, "unknown: handler panic: x"},
		{&Deferral{Delay: time.Second}, "wait 1s"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	inner := errors.New("inner")
	if !errors.Is(&Error{Kind: KindUnknown, Err: inner}, inner) {
		t.Error("Unwrap should expose the underlying error")
	}
}
