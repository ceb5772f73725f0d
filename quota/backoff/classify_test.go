package backoff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"
)

var testNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// newClient returns an openai-go client talking to handler, with the SDK's
// own retries off so every error reaches the caller as the SDK builds it.
func newClient(t *testing.T, handler http.HandlerFunc) openai.Client {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return openai.NewClient(option.WithBaseURL(srv.URL), option.WithAPIKey("test-key"), option.WithMaxRetries(0))
}

var chatParams = openai.ChatCompletionNewParams{
	Model:    "gpt-test",
	Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
}

// apiError makes the real client receive the given answer and returns the
// error it produced (an *openai.Error for any status >= 400).
func apiError(t *testing.T, status int, headers map[string]string, body string) error {
	t.Helper()
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		for k, v := range headers {
			w.Header().Set(k, v)
		}
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	})
	_, err := c.Chat.Completions.New(context.Background(), chatParams)
	if err == nil {
		t.Fatal("expected an error from the client")
	}
	return err
}

// errorBody is the JSON body OpenAI sends with an error.
func errorBody(code, typ, message string) string {
	e := map[string]any{"message": message, "type": typ, "param": nil, "code": nil}
	if code != "" {
		e["code"] = code
	}
	b, _ := json.Marshal(map[string]any{"error": e})
	return string(b)
}

func TestClassifyAPIErrors(t *testing.T) {
	httpDate := testNow.Add(90 * time.Second).Format(http.TimeFormat)
	tests := []struct {
		name      string
		status    int
		headers   map[string]string
		body      string
		kind      Kind
		permanent bool
		after     time.Duration
		code      string
	}{
		// 429: rate limits.
		{"429 rate_limit_exceeded bare", 429, nil,
			errorBody("rate_limit_exceeded", "requests", "Rate limit reached."), KindRateLimit, false, 0, "rate_limit_exceeded"},
		{"429 retry-after-ms", 429, map[string]string{"retry-after-ms": "1500", "retry-after": "9"},
			errorBody("rate_limit_exceeded", "tokens", "x"), KindRateLimit, false, 1500 * time.Millisecond, "rate_limit_exceeded"},
		{"429 retry-after seconds", 429, map[string]string{"retry-after": "7"},
			errorBody("rate_limit_exceeded", "tokens", "x"), KindRateLimit, false, 7 * time.Second, "rate_limit_exceeded"},
		{"429 retry-after http date", 429, map[string]string{"retry-after": httpDate},
			errorBody("rate_limit_exceeded", "tokens", "x"), KindRateLimit, false, 90 * time.Second, "rate_limit_exceeded"},
		{"429 garbage retry-after falls to bucket reset", 429, map[string]string{
			"retry-after":                    "soon",
			"x-ratelimit-remaining-requests": "12",
			"x-ratelimit-reset-requests":     "1s",
			"x-ratelimit-remaining-tokens":   "0",
			"x-ratelimit-reset-tokens":       "6m0s",
		}, errorBody("rate_limit_exceeded", "tokens", "x"), KindRateLimit, false, 6 * time.Minute, "rate_limit_exceeded"},
		{"429 both buckets empty takes the longer", 429, map[string]string{
			"x-ratelimit-remaining-requests": "0",
			"x-ratelimit-reset-requests":     "20s",
			"x-ratelimit-remaining-tokens":   "0",
			"x-ratelimit-reset-tokens":       "3.5s",
		}, errorBody("rate_limit_exceeded", "requests", "x"), KindRateLimit, false, 20 * time.Second, "rate_limit_exceeded"},
		{"429 message figure", 429, nil,
			errorBody("rate_limit_exceeded", "tokens", "Rate limit reached for gpt-4o on tokens per min (TPM): Limit 30000, Used 29000. Please try again in 8m28.9s. Visit https://platform.openai.com/account/rate-limits."),
			KindRateLimit, false, 8*time.Minute + 28900*time.Millisecond, "rate_limit_exceeded"},
		{"429 message ms figure", 429, nil,
			errorBody("rate_limit_exceeded", "requests", "Please try again in 20ms."), KindRateLimit, false, 20 * time.Millisecond, "rate_limit_exceeded"},
		{"429 message seconds word", 429, nil,
			errorBody("", "", "Please try again in 1.5 seconds."), KindRateLimit, false, 1500 * time.Millisecond, ""},
		{"429 azure retry after message", 429, nil,
			errorBody("429", "", "Requests have exceeded call rate limit. Please retry after 6 seconds."), KindRateLimit, false, 6 * time.Second, "429"},
		{"429 garbage message figure", 429, nil,
			errorBody("rate_limit_exceeded", "", "Please try again in a while."), KindRateLimit, false, 0, "rate_limit_exceeded"},
		{"429 header wins over message", 429, map[string]string{"retry-after": "2"},
			errorBody("rate_limit_exceeded", "", "Please try again in 8m28.9s."), KindRateLimit, false, 2 * time.Second, "rate_limit_exceeded"},
		{"429 slow_down", 429, nil, errorBody("slow_down", "", "Slow down"), KindRateLimit, false, 0, "slow_down"},
		{"503 slow_down", 503, nil, errorBody("slow_down", "", "Please reduce your request rate."), KindRateLimit, false, 0, "slow_down"},
		{"429 no body", 429, nil, "", KindRateLimit, false, 0, ""},
		{"429 anthropic type only", 429, nil, errorBody("", "rate_limit_error", "x"), KindRateLimit, false, 0, "rate_limit_error"},
		// Quota.
		{"429 insufficient_quota", 429, nil,
			errorBody("insufficient_quota", "insufficient_quota", "You exceeded your current quota"), KindQuota, false, 0, "insufficient_quota"},
		{"429 insufficient_quota in type only", 429, nil,
			errorBody("", "insufficient_quota", "x"), KindQuota, false, 0, "insufficient_quota"},
		{"429 billing_hard_limit_reached", 429, nil,
			errorBody("billing_hard_limit_reached", "", "x"), KindQuota, false, 0, "billing_hard_limit_reached"},
		{"400 billing_hard_limit_reached (images)", 400, nil,
			errorBody("billing_hard_limit_reached", "invalid_request_error", "x"), KindQuota, false, 0, "billing_hard_limit_reached"},
		{"429 spend-limit", 429, nil, errorBody("spend-limit-exceeded", "", "x"), KindQuota, false, 0, "spend-limit-exceeded"},
		{"402 payment required", 402, nil, errorBody("", "", "x"), KindQuota, false, 0, ""},
		// Bucket resets and retry-after describe the rate limiter, not billing.
		{"429 quota with retry-after", 429, map[string]string{"retry-after": "20"},
			errorBody("insufficient_quota", "", "x"), KindQuota, false, 0, "insufficient_quota"},
		{"429 quota with bucket reset", 429, map[string]string{"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2.5s"},
			errorBody("insufficient_quota", "insufficient_quota", "x"), KindQuota, false, 0, "insufficient_quota"},
		// Task A: the most precise signal wins.
		{"429 retry-after 1 with try again in 51ms", 429, map[string]string{"retry-after": "1"},
			errorBody("rate_limit_exceeded", "tokens", "Rate limit reached for gpt-4o-mini on tokens per min (TPM): Limit 24000, Used 23950, Requested 120. Please try again in 51ms."),
			KindRateLimit, false, 51 * time.Millisecond, "rate_limit_exceeded"},
		{"429 retry-after-ms 0 does not hide retry-after 7", 429, map[string]string{"retry-after-ms": "0", "retry-after": "7"},
			errorBody("rate_limit_exceeded", "", "x"), KindRateLimit, false, 7 * time.Second, "rate_limit_exceeded"},
		{"429 garbage retry-after-ms does not hide retry-after", 429, map[string]string{"retry-after-ms": "soon", "retry-after": "2"},
			errorBody("rate_limit_exceeded", "", "x"), KindRateLimit, false, 2 * time.Second, "rate_limit_exceeded"},
		{"429 retry-after capped by the empty bucket's reset", 429, map[string]string{"retry-after": "1",
			"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "120ms"},
			errorBody("rate_limit_exceeded", "requests", "x"), KindRateLimit, false, 120 * time.Millisecond, "rate_limit_exceeded"},
		{"429 body figure beats a 60 s bucket's full-reset", 429, map[string]string{
			"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "48s"},
			errorBody("rate_limit_exceeded", "tokens", "Please try again in 240ms."), KindRateLimit, false, 240 * time.Millisecond, "rate_limit_exceeded"},
		{"429 azure retry-after-ms", 429, map[string]string{"retry-after-ms": "6500", "retry-after": "7"},
			errorBody("429", "", "Please retry after 7 seconds."), KindRateLimit, false, 6500 * time.Millisecond, "429"},
		// Server.
		{"500", 500, nil, errorBody("", "server_error", "The server had an error"), KindServer, false, 0, "server_error"},
		{"502 html body", 502, map[string]string{"Content-Type": "text/html"}, "<html>bad gateway</html>", KindServer, false, 0, ""},
		{"503 retry-after", 503, map[string]string{"retry-after": "30"}, errorBody("", "", "x"), KindServer, false, 30 * time.Second, ""},
		{"503 ignores bucket resets", 503, map[string]string{"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "5s"},
			errorBody("", "", "x"), KindServer, false, 0, ""},
		{"504", 504, nil, "", KindServer, false, 0, ""},
		{"529 overloaded", 529, nil, errorBody("", "overloaded_error", "Overloaded"), KindServer, false, 0, "overloaded_error"},
		{"599", 599, nil, "", KindServer, false, 0, ""},
		{"400 code overloaded", 400, nil, errorBody("overloaded", "", "x"), KindServer, false, 0, "overloaded"},
		{"409 conflict", 409, nil, errorBody("", "", "x"), KindServer, false, 0, ""},
		{"408 timeout", 408, nil, "", KindNetwork, false, 0, ""},
		// Invalid.
		{"400", 400, map[string]string{"retry-after": "5"},
			errorBody("context_length_exceeded", "invalid_request_error", "too long"), KindInvalid, true, 0, "context_length_exceeded"},
		{"404", 404, nil, errorBody("model_not_found", "invalid_request_error", "x"), KindInvalid, true, 0, "model_not_found"},
		{"413", 413, nil, "", KindInvalid, true, 0, ""},
		{"422", 422, nil, errorBody("", "invalid_request_error", "x"), KindInvalid, true, 0, "invalid_request_error"},
		{"410", 410, nil, "", KindInvalid, true, 0, ""},
		// Auth.
		{"401", 401, nil, errorBody("invalid_api_key", "invalid_request_error", "Incorrect API key provided"), KindAuth, true, 0, "invalid_api_key"},
		{"403 region", 403, nil, errorBody("unsupported_country_region_territory", "request_forbidden", "x"), KindForbidden, true, 0, "unsupported_country_region_territory"},
		{"403 model access", 403, nil, errorBody("model_not_found", "invalid_request_error", "Project does not have access to model gpt-5"), KindForbidden, true, 0, "model_not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := apiError(t, tt.status, tt.headers, tt.body)
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("client returned %T, want *openai.Error", err)
			}
			got := Classify(err, testNow)
			if got.Kind != tt.kind || got.Permanent != tt.permanent || got.RetryAfter != tt.after ||
				got.StatusCode != tt.status || got.Code != tt.code {
				t.Fatalf("Classify = {Kind:%s Permanent:%v RetryAfter:%v Status:%d Code:%q}; want {%s %v %v %d %q}",
					got.Kind, got.Permanent, got.RetryAfter, got.StatusCode, got.Code,
					tt.kind, tt.permanent, tt.after, tt.status, tt.code)
			}
			if got.Err != err || !errors.Is(got, err) {
				t.Fatalf("Err = %v, want the original error", got.Err)
			}
		})
	}
}

func TestClassifyMessageAndWrapping(t *testing.T) {
	long := strings.Repeat("é", 400) // 800 bytes
	err := apiError(t, 429, map[string]string{"retry-after": "3"}, errorBody("rate_limit_exceeded", "", long))
	wrapped := fmt.Errorf("call provider: %w", err)

	got := Classify(wrapped, testNow)
	if got.Kind != KindRateLimit || got.RetryAfter != 3*time.Second {
		t.Fatalf("wrapped: got %s %v", got.Kind, got.RetryAfter)
	}
	if len(got.Message) > MaxMessageBytes || !strings.HasPrefix(long, got.Message) || len(got.Message) < MaxMessageBytes-1 {
		t.Fatalf("Message has %d bytes, want a whole-rune prefix of at most %d", len(got.Message), MaxMessageBytes)
	}
	if strings.Contains(got.Error(), "é") {
		t.Fatalf("Error() must not carry the provider message: %q", got.Error())
	}
	if want := "rate_limit: status 429 (rate_limit_exceeded), retry after 3s"; got.Error() != want {
		t.Fatalf("Error() = %q, want %q", got.Error(), want)
	}
	// Already classified: returned as is.
	again := fmt.Errorf("handler: %w", got)
	if Classify(again, testNow) != got {
		t.Fatal("Classify of a classified error should return the same *Error")
	}
	if Classify(nil, testNow) != nil {
		t.Fatal("Classify(nil) should be nil")
	}
}

func TestClassifyNetworkErrors(t *testing.T) {
	// A real dial to a closed port, through the SDK's http.Client.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := openai.NewClient(option.WithBaseURL("http://"+addr), option.WithAPIKey("k"), option.WithMaxRetries(0))
	_, dialErr := c.Chat.Completions.New(context.Background(), chatParams)
	var urlErr *url.Error
	if !errors.As(dialErr, &urlErr) {
		t.Fatalf("dial error is %T, want *url.Error", dialErr)
	}

	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	_, deadlineErr := c.Chat.Completions.New(expired, chatParams)

	tests := []struct {
		name string
		err  error
		kind Kind
	}{
		{"dial closed port", dialErr, KindNetwork},
		{"expired context through client", deadlineErr, KindNetwork},
		{"deadline exceeded", context.DeadlineExceeded, KindNetwork},
		{"canceled", fmt.Errorf("x: %w", context.Canceled), KindNetwork},
		{"unexpected EOF", io.ErrUnexpectedEOF, KindNetwork},
		{"EOF", fmt.Errorf("reading stream: %w", io.EOF), KindNetwork},
		{"conn reset", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, KindNetwork},
		{"bare ECONNREFUSED", syscall.ECONNREFUSED, KindNetwork},
		{"EPIPE", fmt.Errorf("write: %w", syscall.EPIPE), KindNetwork},
		{"url error", &url.Error{Op: "Post", URL: "http://x", Err: errors.New("boom")}, KindNetwork},
		{"plain error", errors.New("something else"), KindUnknown},
		{"json error", &json.SyntaxError{}, KindUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.err, testNow)
			if got.Kind != tt.kind || got.Permanent || got.StatusCode != 0 || got.Err != tt.err {
				t.Fatalf("Classify(%v) = %+v, want kind %s, not permanent", tt.err, got, tt.kind)
			}
		})
	}
}

// streamErr runs a streaming chat completion against a server that writes
// the given SSE body, optionally aborting the connection afterwards, and
// returns the stream's error.
func streamErr(t *testing.T, body string, abort bool) error {
	t.Helper()
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		io.WriteString(w, body)
		w.(http.Flusher).Flush()
		if abort {
			panic(http.ErrAbortHandler) // cut the connection mid-stream
		}
	})
	stream := c.Chat.Completions.NewStreaming(context.Background(), chatParams)
	for stream.Next() {
	}
	return stream.Err()
}

func TestClassifyStreamErrors(t *testing.T) {
	chunk := `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hel"}}]}` + "\n\n"

	t.Run("error event", func(t *testing.T) {
		err := streamErr(t, chunk+`data: {"error":{"message":"The server had an error while processing your request.","type":"server_error","code":null}}`+"\n\n", false)
		var se *ssestream.StreamError
		if !errors.As(err, &se) {
			t.Fatalf("stream error is %T (%v), want *ssestream.StreamError", err, err)
		}
		got := Classify(err, testNow)
		if got.Kind != KindServer || got.Permanent || got.Code != "server_error" ||
			got.Message != "The server had an error while processing your request." {
			t.Fatalf("Classify = %+v", got)
		}
	})
	t.Run("anthropic style error event", func(t *testing.T) {
		err := streamErr(t, "event: error\n"+`data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`+"\n\n", false)
		got := Classify(err, testNow)
		if got.Kind != KindServer || got.Code != "overloaded_error" || got.Message != "Overloaded" {
			t.Fatalf("Classify = %+v", got)
		}
	})
	t.Run("error event with string error", func(t *testing.T) {
		err := streamErr(t, `data: {"error":"boom"}`+"\n\n", false)
		got := Classify(err, testNow)
		if got.Kind != KindNetwork || got.Code != "" || got.Message != "boom" {
			t.Fatalf("Classify = %+v", got)
		}
	})
	t.Run("cut stream", func(t *testing.T) {
		err := streamErr(t, chunk, true)
		if err == nil {
			t.Fatal("a cut stream should surface an error")
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Logf("cut stream error: %T %v", err, err)
		}
		if got := Classify(err, testNow); got.Kind != KindNetwork {
			t.Fatalf("Classify(%T %v) = %s, want network", err, err, got.Kind)
		}
	})
}

func TestMessageRetryAfter(t *testing.T) {
	tests := []struct {
		msg  string
		want time.Duration
		ok   bool
	}{
		{"Please try again in 8m28.9s. Visit ...", 8*time.Minute + 28900*time.Millisecond, true},
		{"please TRY AGAIN IN 20ms.", 20 * time.Millisecond, true},
		{"try again in 1.5 seconds", 1500 * time.Millisecond, true},
		{"try again in 2 minutes", 2 * time.Minute, true},
		{"try again in 250 milliseconds", 250 * time.Millisecond, true},
		{"try again in 3s", 3 * time.Second, true},
		{"Please retry after 6 seconds.", 6 * time.Second, true},
		{"try again in", 0, false},
		{"try again in -5s", 0, false},
		{"try again in 1e9 seconds", 0, false},
		{"try again in 999999999999 seconds", 0, false},
		{"try again later", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, ok := messageRetryAfter(tt.msg)
		if got != tt.want || ok != tt.ok {
			t.Errorf("messageRetryAfter(%q) = %v, %v; want %v, %v", tt.msg, got, ok, tt.want, tt.ok)
		}
	}
}
