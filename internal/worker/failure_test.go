package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/quota/backoff"
)

const (
	rateLimit51ms = `{"error":{"message":"Rate limit reached for gpt-4o-mini in organization org-abc on tokens per min (TPM): Limit 24000, Used 23990, Requested 120. Please try again in 51ms.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}`
	chatOK        = `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}`
)

// OpenAI's usual 429: retry-after 1 (whole seconds, rounded up) and the real
// wait, 51 ms, only in the message. The account pauses for 51 ms, not 1 s.
func TestHandlerRateLimitPausesForThePreciseWait(t *testing.T) {
	var answered atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answered.Store(time.Now().UnixNano())
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, rateLimit51ms)
	}))
	t.Cleanup(srv.Close)
	h, g, acct := fixtureHandler(t, srv.URL)

	err := h.ProcessTask(context.Background(), task(`{"model":"gpt-4o-mini","input":"hello","max_output_tokens":32,"endpoint":"chat_completions"}`))
	var be *backoff.Error
	if !errors.As(err, &be) || be.Kind != backoff.KindRateLimit || be.RetryAfter != 51*time.Millisecond {
		t.Fatalf("err = %v, want a rate limit with retry-after 51ms", err)
	}
	rec, _, cerr := g.Check(context.Background(), acct)
	if cerr != nil {
		t.Fatal(cerr)
	}
	// The record's until, from the provider's (last) answer: 51 ms plus
	// however late the handler read its clock, far from retry-after's 1 s.
	if d := rec.Until.Sub(time.Unix(0, answered.Load())); d < 50*time.Millisecond || d > 51*time.Millisecond+pauseSlack || rec.Kind != "rate_limit" {
		t.Fatalf("pause record until = answer + %v (%s), want answer + ~51ms", d, rec.Kind)
	}
	if errors.Is(err, asynq.SkipRetry) || backoff.IsFailure(err) {
		t.Fatal("a rate limit is retried and is not a failure")
	}
}

// A short wait is waited out in the handler and the task sent again in the
// same slot: it completes without a trip through asynq (1 s precision).
func TestHandlerShortRateLimitRetriesInline(t *testing.T) {
	var calls atomic.Int64
	var first, second atomic.Int64 // unix nanos of the two requests
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if n == 1 {
			first.Store(time.Now().UnixNano())
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, rateLimit51ms)
			return
		}
		second.Store(time.Now().UnixNano())
		io.WriteString(w, chatOK)
	}))
	t.Cleanup(srv.Close)
	h, _, _ := fixtureHandler(t, srv.URL)

	if err := h.ProcessTask(context.Background(), task(`{"model":"gpt-4o-mini","input":"hello","max_output_tokens":32,"endpoint":"chat_completions"}`)); err != nil {
		t.Fatalf("ProcessTask = %v, want the inline retry to succeed", err)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("provider saw %d requests, want 2", n)
	}
	gap := time.Duration(second.Load() - first.Load())
	if gap < 51*time.Millisecond {
		t.Fatalf("sent again after %v, before the provider's 51ms", gap)
	}
	t.Logf("sent again %v after the 429 (asynq would have taken at least 1s)", gap)
}

// A 403 for one model is that task's problem; 403s for ForbiddenModels
// different models within ForbiddenWindow pause the account.
func TestHandlerForbiddenPausesOnlyForManyModels(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"error":{"message":"Project does not have access to this model","type":"invalid_request_error","param":null,"code":"model_not_found"}}`)
	}))
	t.Cleanup(srv.Close)
	h, g, acct := fixtureHandler(t, srv.URL)
	ctx := context.Background()
	run := func(model string) error {
		return h.ProcessTask(ctx, task(fmt.Sprintf(`{"model":%q,"input":"hello","max_output_tokens":32}`, model)))
	}
	for i, model := range []string{"model-a", "model-a", "model-b", "model-b"} {
		err := run(model)
		var be *backoff.Error
		if !errors.Is(err, asynq.SkipRetry) || !errors.As(err, &be) || be.Kind != backoff.KindForbidden {
			t.Fatalf("403 #%d: err = %v, want forbidden, archived", i+1, err)
		}
		if _, active, _ := g.Check(ctx, acct); active {
			t.Fatalf("403 #%d (%s): account paused with only two models refused", i+1, model)
		}
	}
	if err := run("model-c"); !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("third model: err = %v, want archived", err)
	}
	rec, active, _ := g.Check(ctx, acct)
	if d := time.Until(rec.Until); !active || rec.Kind != "auth" || d < time.Hour-pauseSlack || d > time.Hour {
		t.Fatalf("after 403s for 3 models: record %+v active=%v, want an auth pause of DefaultPause", rec, active)
	}
}

func TestForbiddenTrackerWindow(t *testing.T) {
	var f forbiddenTracker
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if f.add("x", "a", t0) || f.add("x", "b", t0.Add(5*time.Minute)) {
		t.Fatal("two models must not trip the tracker")
	}
	// Another account of a pool has its own count.
	if f.add("y", "c", t0.Add(6*time.Minute)) {
		t.Fatal("a 403 on another account counted against this one")
	}
	// "a" has left the window by now.
	if f.add("x", "c", t0.Add(ForbiddenWindow+2*time.Minute)) {
		t.Fatal("a 403 older than the window still counted")
	}
	if !f.add("x", "d", t0.Add(ForbiddenWindow+3*time.Minute)) { // b, c, d
		t.Fatal("three models within the window must trip the tracker")
	}
}

// Every failure kind that pauses the account (pauseFor) names its pause with
// one of pausegate's kinds, not with a spelling of its own.
func TestPauseKind(t *testing.T) {
	tests := []struct {
		kind backoff.Kind
		want pausegate.Kind
	}{
		{backoff.KindRateLimit, pausegate.KindRateLimit},
		{backoff.KindQuota, pausegate.KindQuota},
		{backoff.KindAuth, pausegate.KindAuth},
		{backoff.KindForbidden, pausegate.KindAuth},
	}
	for _, tt := range tests {
		if got := pauseKind(&backoff.Error{Kind: tt.kind}); got != tt.want {
			t.Errorf("pauseKind(%s) = %q, want %q", tt.kind, got, tt.want)
		}
	}
}
