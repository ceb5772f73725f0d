package quota

import (
	"math"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/promptq/promptq/internal/decimal"
)

// Bucket is what a provider said about one of its limits (requests or tokens)
// in one response. Unknown values are -1: a missing, empty, negative or
// unparsable header is unknown, never "zero" and never "reset now".
type Bucket struct {
	Limit     int64         // x-ratelimit-limit-*; -1 when unknown
	Remaining int64         // x-ratelimit-remaining-*; -1 when unknown
	Reset     time.Duration // time until the bucket is full again; -1 when unknown
}

// Known reports whether the provider gave a usable remaining figure.
func (b Bucket) Known() bool { return b.Remaining >= 0 }

// HeaderInfo is everything rate-limit related in one response's headers.
type HeaderInfo struct {
	Requests   Bucket
	Tokens     Bucket
	RetryAfter time.Duration // from retry-after-ms, else retry-after; -1 when absent
}

// Unknown is a HeaderInfo in which nothing is known.
var Unknown = HeaderInfo{
	Requests:   Bucket{Limit: -1, Remaining: -1, Reset: -1},
	Tokens:     Bucket{Limit: -1, Remaining: -1, Reset: -1},
	RetryAfter: -1,
}

// Bounds beyond which a header value is treated as nonsense (unknown) or capped.
const (
	// MaxHeaderCount is the largest limit or remaining figure ParseHeaders
	// accepts; anything above is unknown.
	MaxHeaderCount = 1_000_000_000_000
	// MaxHeaderDuration is the longest reset ParseHeaders accepts (longer is
	// unknown) and the cap applied to a retry-after.
	MaxHeaderDuration = 48 * time.Hour
)

// bucketHeaders names the three headers of one bucket, in canonical form
// (what http.Header stores) and in lower case (what a raw map, HTTP/2 or a
// JSON dump of headers may hold).
type bucketHeaders struct {
	limit, remaining, reset string
	// rfc3339Reset is true when the provider sends reset as a timestamp.
	rfc3339Reset bool
}

// The header trios, in order of preference per bucket: OpenAI/Azure first,
// then Anthropic. For tokens, Anthropic's input-tokens trio is used only when
// its plain tokens trio says nothing.
var (
	requestHeaders = []bucketHeaders{
		{"X-Ratelimit-Limit-Requests", "X-Ratelimit-Remaining-Requests", "X-Ratelimit-Reset-Requests", false},
		{"Anthropic-Ratelimit-Requests-Limit", "Anthropic-Ratelimit-Requests-Remaining", "Anthropic-Ratelimit-Requests-Reset", true},
	}
	tokenHeaders = []bucketHeaders{
		{"X-Ratelimit-Limit-Tokens", "X-Ratelimit-Remaining-Tokens", "X-Ratelimit-Reset-Tokens", false},
		{"Anthropic-Ratelimit-Tokens-Limit", "Anthropic-Ratelimit-Tokens-Remaining", "Anthropic-Ratelimit-Tokens-Reset", true},
		{"Anthropic-Ratelimit-Input-Tokens-Limit", "Anthropic-Ratelimit-Input-Tokens-Remaining", "Anthropic-Ratelimit-Input-Tokens-Reset", true},
	}
)

// ParseHeaders reads the rate-limit headers of one response. now is used to
// turn absolute times (HTTP-date retry-after, RFC 3339 resets) into durations.
// It never panics and treats every value it cannot read as unknown.
//
// Understood: OpenAI/Azure x-ratelimit-{limit,remaining,reset}-{requests,tokens}
// (reset as a Go duration such as "6m0s", or plain seconds such as "1.5"),
// Anthropic anthropic-ratelimit-{requests,tokens,input-tokens}-{limit,remaining,reset}
// (reset as an RFC 3339 time), retry-after-ms and retry-after. When both
// providers' headers are present for a bucket, OpenAI's win. Header names are
// matched case-insensitively.
func ParseHeaders(h http.Header, now time.Time) HeaderInfo {
	info := Unknown
	if len(h) == 0 {
		return info
	}
	h = canonical(h)
	info.Requests = firstKnownBucket(h, now, requestHeaders)
	info.Tokens = firstKnownBucket(h, now, tokenHeaders)
	if d, ok := parseRetryAfter(h, now); ok {
		info.RetryAfter = d
	}
	return info
}

// canonical returns h itself when every key is in canonical MIME form (the
// usual case for a header that came through net/http), else a copy with
// canonical keys so that lookups below are plain map reads.
func canonical(h http.Header) http.Header {
	clean := true
	for k := range h {
		if !looksCanonical(k) {
			clean = false
			break
		}
	}
	if clean {
		return h
	}
	// Canonical keys first, then the others in sorted order, so that
	// duplicates differing only in case merge the same way every time.
	c := make(http.Header, len(h))
	var odd []string
	for k, vs := range h {
		if ck := textproto.CanonicalMIMEHeaderKey(k); ck == k {
			c[k] = append(c[k], vs...)
		} else {
			odd = append(odd, k)
		}
	}
	slices.Sort(odd)
	for _, k := range odd {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		c[ck] = append(c[ck], h[k]...)
	}
	return c
}

// looksCanonical is a fast check that k has no letter in the wrong case for
// canonical MIME form ("X-Ratelimit-Limit-Requests"). Keys it rejects go
// through textproto.CanonicalMIMEHeaderKey, which has the final word.
func looksCanonical(k string) bool {
	upper := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return false
		}
		upper = c == '-'
	}
	return true
}

// get returns the first value of a canonical key of a canonical header.
func get(h http.Header, key string) string {
	if vs := h[key]; len(vs) > 0 {
		return strings.TrimSpace(vs[0])
	}
	return ""
}

// firstKnownBucket parses each trio in turn and returns the first one that
// yields at least one known figure.
func firstKnownBucket(h http.Header, now time.Time, trios []bucketHeaders) Bucket {
	for _, t := range trios {
		b := Bucket{Limit: -1, Remaining: -1, Reset: -1}
		if n, ok := parseCount(get(h, t.limit)); ok && n > 0 {
			b.Limit = n
		}
		if n, ok := parseCount(get(h, t.remaining)); ok {
			b.Remaining = n
		}
		if d, ok := parseReset(get(h, t.reset), now, t.rfc3339Reset); ok {
			b.Reset = d
		}
		if b.Limit >= 0 || b.Remaining >= 0 || b.Reset >= 0 {
			return b
		}
	}
	return Bucket{Limit: -1, Remaining: -1, Reset: -1}
}

// parseCount reads a non-negative integer no larger than MaxHeaderCount. A
// whole number written as a decimal ("1000.0") is accepted.
func parseCount(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > MaxHeaderCount {
			return 0, false
		}
		return n, true
	}
	if !decimal.Valid(s) {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || f > MaxHeaderCount {
		return 0, false
	}
	return int64(f), true
}

// parseDecimal reads a plain decimal number ("60", "1.5") and returns it
// multiplied by unit, in nanoseconds, as a float (possibly +Inf for a huge
// figure, so callers can reject or cap without overflowing).
func parseDecimal(s string, unit time.Duration) (float64, bool) {
	if !decimal.Valid(s) {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !math.IsInf(f, 1) {
		return 0, false
	}
	return f * float64(unit), true
}

// capped converts nanoseconds to a duration no longer than MaxHeaderDuration.
func capped(ns float64) time.Duration {
	if ns >= float64(MaxHeaderDuration) {
		return MaxHeaderDuration
	}
	return time.Duration(math.Round(ns))
}

// ParseResetDuration reads a rate-limit reset value: a Go duration ("20ms",
// "6m0s", "1m30.5s", "500us") or a plain number of seconds ("60", "1.5", as
// Azure sends). ok is false for an empty, garbage, zero, negative or
// sub-nanosecond value and for one longer than MaxHeaderDuration: a reset is
// never "now".
func ParseResetDuration(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	var d time.Duration
	if ns, ok := parseDecimal(s, time.Second); ok {
		if ns > float64(MaxHeaderDuration) {
			return 0, false
		}
		d = time.Duration(math.Round(ns))
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, false
		}
	}
	if d <= 0 || d > MaxHeaderDuration {
		return 0, false
	}
	return d, true
}

// parseReset reads a reset given either as a duration or, when
// timestampFirst is set (Anthropic) or the duration form fails, as an RFC
// 3339 time relative to now. The same bounds as ParseResetDuration apply.
func parseReset(s string, now time.Time, timestampFirst bool) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	if !timestampFirst {
		if d, ok := ParseResetDuration(s); ok {
			return d, true
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		d := t.Sub(now)
		if d <= 0 || d > MaxHeaderDuration {
			return 0, false
		}
		return d, true
	}
	if timestampFirst {
		return ParseResetDuration(s)
	}
	return 0, false
}

// ParseRetryAfter reads retry-after-ms (milliseconds, decimals allowed) and,
// when that is absent or unusable, retry-after (seconds, decimals allowed, or
// an HTTP-date, taken relative to now; a date in the past means 0). The
// result is capped at MaxHeaderDuration. ok is false when neither header
// holds a usable value (absent, negative or garbage).
func ParseRetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if len(h) == 0 {
		return 0, false
	}
	return parseRetryAfter(canonical(h), now)
}

// parseRetryAfter is ParseRetryAfter on a header with canonical keys.
func parseRetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if ns, ok := parseDecimal(get(h, "Retry-After-Ms"), time.Millisecond); ok {
		return capped(ns), true
	}
	s := get(h, "Retry-After")
	if s == "" {
		return 0, false
	}
	if ns, ok := parseDecimal(s, time.Second); ok {
		return capped(ns), true
	}
	if t, err := http.ParseTime(s); err == nil {
		d := t.Sub(now)
		return max(0, min(d, MaxHeaderDuration)), true
	}
	return 0, false
}
