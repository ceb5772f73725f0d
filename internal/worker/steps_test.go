package worker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/promptq/promptq/internal/tokens"
	"github.com/promptq/promptq/quota"
	"github.com/promptq/promptq/quota/backoff"
	"github.com/promptq/promptq/tasks"
)

// The pipeline's steps on their own (ProcessTask's tests run them together).

func TestParseStep(t *testing.T) {
	h := NewHandler(HandlerConfig{Account: "a", DefaultMaxOutputTokens: 77, Estimator: tokens.NewEstimator(tokens.ModeAuto)}, nil, nil, nil)
	j, err := h.parse(context.Background(), task(`{"model":42}`))
	if j != nil || !errors.Is(err, asynq.SkipRetry) {
		t.Errorf("malformed payload: job %v, err %v; want no job and SkipRetry", j, err)
	}
	j, err = h.parse(context.Background(), task(`{"model":"gpt-4o-mini","input":"hello there"}`))
	if err != nil || j == nil {
		t.Fatalf("parse: %v", err)
	}
	if j.maxOut != 77 {
		t.Errorf("max output %d, want the default 77 for a task that sets none", j.maxOut)
	}
	if j.input.Chars <= 0 || j.input.Tokens <= 0 {
		t.Errorf("input estimate %+v, want both bases", j.input)
	}
}

func TestFailoverStep(t *testing.T) {
	a := &target{name: "a", tier: 1, weight: 1}
	b := &target{name: "b", tier: 1, weight: 1, models: map[string]bool{"m2": true}}
	pooled := newHandler(HandlerConfig{Account: "p"}, nil, nil, poolPeek{})
	pooled.routes, pooled.byName = []*target{a, b}, map[string]*target{"a": a, "b": b}
	single := NewHandler(HandlerConfig{Account: "a"}, nil, nil, nil)
	quotaErr := &backoff.Error{Kind: backoff.KindQuota}
	notFound := &backoff.Error{Kind: backoff.KindInvalid, Code: backoff.CodeModelNotFound, Permanent: true}
	for _, tc := range []struct {
		name  string
		h     *Handler
		model string
		cl    *backoff.Error
		want  bool
	}{
		{"one account: no failover", single, "m2", quotaErr, false},
		{"quota, another account serves the model", pooled, "m2", quotaErr, true},
		{"quota, no other account serves the model", pooled, "m1", quotaErr, false},
		{"model_not_found, another serves it", pooled, "m2", notFound, true},
		{"a server error is not the account's refusal", pooled, "m2", &backoff.Error{Kind: backoff.KindServer}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := &job{p: &tasks.Payload{Model: tc.model}}
			if got := tc.h.failover(j, a, tc.cl); got != tc.want {
				t.Errorf("failover = %v, want %v", got, tc.want)
			}
			if tc.want && !j.refused["a"] {
				t.Error("the refusing account is not marked for this task")
			}
		})
	}
}

func TestFirstEnd(t *testing.T) {
	now := time.Now()
	first, indefinite := firstEnd(
		[]quota.Headroom{{Paused: true, PausedUntil: now.Add(time.Hour)}, {Paused: true}},
		[]quota.Headroom{{DailyExhausted: true, DailyResetAt: now.Add(10 * time.Minute)}, {ModelPaused: true, PausedUntil: now.Add(time.Minute)}, {Fits: true}})
	if !first.Equal(now.Add(time.Minute)) || !indefinite {
		t.Errorf("firstEnd = %v, %v; want the model pause's end and an indefinite pause among them", first.Sub(now), indefinite)
	}
}

func TestHeld(t *testing.T) {
	now := time.Now()
	window := 2 * time.Second
	if w, ok := held([]quota.Headroom{{Paused: true, PausedUntil: now.Add(51 * time.Millisecond)}}, window, now); !ok || w != 51*time.Millisecond+ScheduleSlack {
		t.Errorf("a 51 ms pause: %v, %v; want held for it", w, ok)
	}
	if _, ok := held([]quota.Headroom{{Paused: true, PausedUntil: now.Add(time.Hour)}, {Paused: true}}, window, now); ok {
		t.Error("a long or indefinite pause holds the tier")
	}
	if w, ok := held([]quota.Headroom{{Probe: true, Wait: 50 * time.Millisecond}, {TenantLimited: true, Wait: 3 * time.Second}}, window, now); !ok || w != 50*time.Millisecond {
		t.Errorf("probe: %v, %v; want held 50 ms", w, ok)
	}
}
