package quota

import (
	"net/http"
	"testing"
)

// BenchmarkParseHeaders parses the header set of a typical OpenAI chat
// completion response (rate-limit headers among the usual others).
func BenchmarkParseHeaders(b *testing.B) {
	h := http.Header{}
	for k, v := range map[string]string{
		"Content-Type":                   "application/json",
		"Date":                           "Sat, 01 Mar 2025 12:00:00 GMT",
		"Openai-Organization":            "org-abc",
		"Openai-Processing-Ms":           "412",
		"Openai-Version":                 "2020-10-01",
		"X-Request-Id":                   "req_0123456789abcdef",
		"Strict-Transport-Security":      "max-age=31536000; includeSubDomains; preload",
		"Cf-Ray":                         "91a0b0c0d0e0f000-AMS",
		"X-Ratelimit-Limit-Requests":     "10000",
		"X-Ratelimit-Limit-Tokens":       "2000000",
		"X-Ratelimit-Remaining-Requests": "9999",
		"X-Ratelimit-Remaining-Tokens":   "1999190",
		"X-Ratelimit-Reset-Requests":     "6ms",
		"X-Ratelimit-Reset-Tokens":       "24ms",
	} {
		h.Set(k, v)
	}
	b.ReportAllocs()
	for b.Loop() {
		info := ParseHeaders(h, testNow)
		if info.Tokens.Remaining != 1999190 {
			b.Fatal("unexpected parse result")
		}
	}
}
