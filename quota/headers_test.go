package quota

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// hdr builds an http.Header through Set, so keys are canonical as net/http
// would store them.
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func bucket(limit, remaining int64, reset time.Duration) Bucket {
	return Bucket{Limit: limit, Remaining: remaining, Reset: reset}
}

var unknownBucket = bucket(-1, -1, -1)

func TestParseResetDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"20ms", 20 * time.Millisecond, true},
		{"1s", time.Second, true},
		{"6m0s", 6 * time.Minute, true},
		{"1m30.5s", 90*time.Second + 500*time.Millisecond, true},
		{"3.114s", 3114 * time.Millisecond, true},
		{"1h2m3s", time.Hour + 2*time.Minute + 3*time.Second, true},
		{"0.5s", 500 * time.Millisecond, true},
		{"500us", 500 * time.Microsecond, true},
		{"500µs", 500 * time.Microsecond, true},
		{"60", time.Minute, true},
		{"1.5", 1500 * time.Millisecond, true},
		{".5", 500 * time.Millisecond, true},
		{" 7s ", 7 * time.Second, true},
		{"48h", 48 * time.Hour, true},
		{"172800", 48 * time.Hour, true},
		// unknown
		{"", 0, false},
		{"   ", 0, false},
		{"0", 0, false},
		{"0s", 0, false},
		{"0.0", 0, false},
		{"-1", 0, false},
		{"-5s", 0, false},
		{"48h0m1s", 0, false},
		{"172801", 0, false},
		{"1700000000", 0, false}, // a unix timestamp is not a duration
		{"99999999999999999999999999", 0, false},
		{"0.0000000001", 0, false}, // rounds to 0ns
		{"1e3", 0, false},
		{"NaN", 0, false},
		{"Inf", 0, false},
		{"+5", 0, false},
		{"1.2.3", 0, false},
		{"soon", 0, false},
		{"5 s", 0, false},
		{"9223372036854775807s", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseResetDuration(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseResetDuration(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	httpDate := testNow.Add(90 * time.Second).Format(http.TimeFormat)
	pastDate := testNow.Add(-time.Hour).Format(http.TimeFormat)
	farDate := testNow.Add(100 * time.Hour).Format(http.TimeFormat)
	tests := []struct {
		name string
		h    http.Header
		want time.Duration
		ok   bool
	}{
		{"nil header", nil, 0, false},
		{"absent", hdr("X-Other", "1"), 0, false},
		{"ms", hdr("retry-after-ms", "1500"), 1500 * time.Millisecond, true},
		{"ms decimal", hdr("retry-after-ms", "20.5"), 20500 * time.Microsecond, true},
		{"ms wins over seconds", hdr("retry-after-ms", "250", "retry-after", "9"), 250 * time.Millisecond, true},
		{"garbage ms falls back", hdr("retry-after-ms", "abc", "retry-after", "9"), 9 * time.Second, true},
		{"negative ms falls back", hdr("retry-after-ms", "-5", "retry-after", "2"), 2 * time.Second, true},
		{"seconds", hdr("retry-after", "30"), 30 * time.Second, true},
		{"decimal seconds", hdr("retry-after", "1.25"), 1250 * time.Millisecond, true},
		{"zero", hdr("retry-after", "0"), 0, true},
		{"http date", hdr("retry-after", httpDate), 90 * time.Second, true},
		{"http date in the past", hdr("retry-after", pastDate), 0, true},
		{"http date capped", hdr("retry-after", farDate), MaxHeaderDuration, true},
		{"huge seconds capped", hdr("retry-after", "999999999999999999999999"), MaxHeaderDuration, true},
		{"huge ms capped", hdr("retry-after-ms", "199999999999999"), MaxHeaderDuration, true},
		{"negative", hdr("retry-after", "-3"), 0, false},
		{"garbage", hdr("retry-after", "later"), 0, false},
		{"empty", hdr("retry-after", ""), 0, false},
		{"lower-case raw map", http.Header{"retry-after": {"4"}}, 4 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseRetryAfter(tt.h, testNow)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("got %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestParseHeaders(t *testing.T) {
	rfc := func(d time.Duration) string { return testNow.Add(d).Format(time.RFC3339) }
	tests := []struct {
		name string
		h    http.Header
		want HeaderInfo
	}{
		{"nil", nil, Unknown},
		{"no rate-limit headers", hdr("Content-Type", "application/json"), Unknown},
		{
			"openai full set",
			hdr(
				"x-ratelimit-limit-requests", "10000",
				"x-ratelimit-remaining-requests", "9999",
				"x-ratelimit-reset-requests", "6ms",
				"x-ratelimit-limit-tokens", "2000000",
				"x-ratelimit-remaining-tokens", "1999190",
				"x-ratelimit-reset-tokens", "1m30.5s",
			),
			HeaderInfo{
				Requests:   bucket(10000, 9999, 6*time.Millisecond),
				Tokens:     bucket(2000000, 1999190, 90500*time.Millisecond),
				RetryAfter: -1,
			},
		},
		{
			"azure seconds resets and retry-after-ms",
			hdr(
				"x-ratelimit-remaining-requests", "0",
				"x-ratelimit-reset-requests", "60",
				"x-ratelimit-remaining-tokens", "120",
				"x-ratelimit-reset-tokens", "1.5",
				"retry-after-ms", "1200",
				"retry-after", "2",
			),
			HeaderInfo{
				Requests:   bucket(-1, 0, time.Minute),
				Tokens:     bucket(-1, 120, 1500*time.Millisecond),
				RetryAfter: 1200 * time.Millisecond,
			},
		},
		{
			"remaining zero is a real value",
			hdr("x-ratelimit-remaining-tokens", "0"),
			HeaderInfo{Requests: unknownBucket, Tokens: bucket(-1, 0, -1), RetryAfter: -1},
		},
		{
			"unknown values",
			hdr(
				"x-ratelimit-limit-requests", "0",
				"x-ratelimit-remaining-requests", "-1",
				"x-ratelimit-reset-requests", "0s",
				"x-ratelimit-limit-tokens", "-100",
				"x-ratelimit-remaining-tokens", "lots",
				"x-ratelimit-reset-tokens", "0",
				"retry-after", "-1",
			),
			Unknown,
		},
		{
			"absurd values",
			hdr(
				"x-ratelimit-limit-requests", "1000000000001",
				"x-ratelimit-remaining-requests", "99999999999999999999",
				"x-ratelimit-reset-requests", "49h",
				"x-ratelimit-limit-tokens", "1000000000000",
				"x-ratelimit-reset-tokens", "1700000000",
			),
			HeaderInfo{Requests: unknownBucket, Tokens: bucket(1e12, -1, -1), RetryAfter: -1},
		},
		{
			"empty and blank values",
			hdr("x-ratelimit-limit-requests", "", "x-ratelimit-remaining-requests", "  ", "retry-after", ""),
			Unknown,
		},
		{
			"whole-number decimals and spaces",
			hdr("x-ratelimit-limit-requests", " 500.0 ", "x-ratelimit-remaining-requests", "499.5"),
			HeaderInfo{Requests: bucket(500, -1, -1), Tokens: unknownBucket, RetryAfter: -1},
		},
		{
			"anthropic",
			hdr(
				"anthropic-ratelimit-requests-limit", "50",
				"anthropic-ratelimit-requests-remaining", "49",
				"anthropic-ratelimit-requests-reset", rfc(time.Second),
				"anthropic-ratelimit-tokens-limit", "40000",
				"anthropic-ratelimit-tokens-remaining", "0",
				"anthropic-ratelimit-tokens-reset", rfc(20*time.Second),
				"anthropic-ratelimit-input-tokens-limit", "30000",
				"anthropic-ratelimit-input-tokens-remaining", "123",
				"retry-after", "20",
			),
			HeaderInfo{
				Requests:   bucket(50, 49, time.Second),
				Tokens:     bucket(40000, 0, 20*time.Second),
				RetryAfter: 20 * time.Second,
			},
		},
		{
			"anthropic input tokens when plain tokens absent",
			hdr(
				"anthropic-ratelimit-input-tokens-limit", "30000",
				"anthropic-ratelimit-input-tokens-remaining", "123",
				"anthropic-ratelimit-input-tokens-reset", rfc(5*time.Second),
				"anthropic-ratelimit-output-tokens-limit", "8000",
			),
			HeaderInfo{Requests: unknownBucket, Tokens: bucket(30000, 123, 5*time.Second), RetryAfter: -1},
		},
		{
			"anthropic reset in the past, too far, or garbage is unknown",
			hdr(
				"anthropic-ratelimit-requests-remaining", "3",
				"anthropic-ratelimit-requests-reset", rfc(-time.Second),
				"anthropic-ratelimit-tokens-remaining", "3",
				"anthropic-ratelimit-tokens-reset", rfc(49*time.Hour),
			),
			HeaderInfo{Requests: bucket(-1, 3, -1), Tokens: bucket(-1, 3, -1), RetryAfter: -1},
		},
		{
			"anthropic reset as a duration is tolerated",
			hdr("anthropic-ratelimit-requests-reset", "2s"),
			HeaderInfo{Requests: bucket(-1, -1, 2*time.Second), Tokens: unknownBucket, RetryAfter: -1},
		},
		{
			"openai reset as RFC 3339 is tolerated",
			hdr("x-ratelimit-reset-tokens", rfc(3*time.Second)),
			HeaderInfo{Requests: unknownBucket, Tokens: bucket(-1, -1, 3*time.Second), RetryAfter: -1},
		},
		{
			"openai wins over anthropic per bucket",
			hdr(
				"x-ratelimit-remaining-requests", "7",
				"anthropic-ratelimit-requests-remaining", "99",
				"anthropic-ratelimit-tokens-remaining", "1000",
			),
			HeaderInfo{Requests: bucket(-1, 7, -1), Tokens: bucket(-1, 1000, -1), RetryAfter: -1},
		},
		{
			"garbage openai trio falls through to anthropic",
			hdr(
				"x-ratelimit-remaining-requests", "n/a",
				"anthropic-ratelimit-requests-remaining", "99",
			),
			HeaderInfo{Requests: bucket(-1, 99, -1), Tokens: unknownBucket, RetryAfter: -1},
		},
		{
			"non-canonical raw map keys",
			http.Header{
				"x-ratelimit-remaining-requests": {"5"},
				"X-RATELIMIT-LIMIT-REQUESTS":     {"10"},
				"x-RateLimit-Reset-Requests":     {"1s"},
				"retry-after-ms":                 {"100"},
			},
			HeaderInfo{Requests: bucket(10, 5, time.Second), Tokens: unknownBucket, RetryAfter: 100 * time.Millisecond},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseHeaders(tt.h, testNow)
			if got != tt.want {
				t.Fatalf("ParseHeaders:\n got  %+v\n want %+v", got, tt.want)
			}
		})
	}
}

func TestParseHeadersDoesNotModifyInput(t *testing.T) {
	h := http.Header{"x-ratelimit-remaining-requests": {"5"}}
	ParseHeaders(h, testNow)
	if len(h) != 1 || h["x-ratelimit-remaining-requests"][0] != "5" {
		t.Fatalf("input header changed: %v", h)
	}
}

// headerFromText turns "Key: value" lines into a raw header map, keeping keys
// exactly as written (so the fuzzer also explores non-canonical keys).
func headerFromText(raw string) http.Header {
	h := http.Header{}
	for _, line := range strings.Split(raw, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		h[k] = append(h[k], v)
	}
	return h
}

func checkBucket(t *testing.T, name string, b Bucket) {
	t.Helper()
	if b.Limit != -1 && (b.Limit <= 0 || b.Limit > MaxHeaderCount) {
		t.Fatalf("%s.Limit = %d out of range", name, b.Limit)
	}
	if b.Remaining != -1 && (b.Remaining < 0 || b.Remaining > MaxHeaderCount) {
		t.Fatalf("%s.Remaining = %d out of range", name, b.Remaining)
	}
	if b.Reset != -1 && (b.Reset <= 0 || b.Reset > MaxHeaderDuration) {
		t.Fatalf("%s.Reset = %v out of range", name, b.Reset)
	}
}

func FuzzParseHeaders(f *testing.F) {
	f.Add("x-ratelimit-limit-requests: 10000\nx-ratelimit-remaining-requests: 9999\nx-ratelimit-reset-requests: 6ms\n"+
		"x-ratelimit-limit-tokens: 2000000\nx-ratelimit-remaining-tokens: 0\nx-ratelimit-reset-tokens: 1m30.5s", int64(0))
	f.Add("Retry-After: Sat, 01 Mar 2025 12:01:30 GMT\nretry-after-ms: -1", int64(0))
	f.Add("anthropic-ratelimit-tokens-reset: 2025-03-01T12:00:20Z\nanthropic-ratelimit-input-tokens-remaining: 5", int64(-1))
	f.Fuzz(func(t *testing.T, raw string, offset int64) {
		now := testNow.Add(time.Duration(offset))
		info := ParseHeaders(headerFromText(raw), now)
		checkBucket(t, "Requests", info.Requests)
		checkBucket(t, "Tokens", info.Tokens)
		if info.RetryAfter != -1 && (info.RetryAfter < 0 || info.RetryAfter > MaxHeaderDuration) {
			t.Fatalf("RetryAfter = %v out of range", info.RetryAfter)
		}
	})
}

func FuzzParseResetDuration(f *testing.F) {
	for _, s := range []string{"20ms", "6m0s", "1m30.5s", "60", "1.5", "0", "-1s", "500us", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := ParseResetDuration(s)
		if ok && (d <= 0 || d > MaxHeaderDuration) {
			t.Fatalf("ParseResetDuration(%q) = %v, ok but out of range", s, d)
		}
		if !ok && d != 0 {
			t.Fatalf("ParseResetDuration(%q) = %v, not ok but non-zero", s, d)
		}
	})
}
