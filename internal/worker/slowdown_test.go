package worker

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/promptq/promptq/internal/fakeopenai"
	"github.com/promptq/promptq/quota"
	"github.com/promptq/promptq/quota/backoff"
)

// setupLimited is setup that also returns the handler's limiter.
func setupLimited(t *testing.T, fc fakeopenai.Config) (*Handler, *fakeopenai.Server, *quota.Limiter, string) {
	t.Helper()
	f := setup(t, fc)
	return f.h, f.fake, f.lim, f.account
}

func TestHandlerSlowDownStartsRamp(t *testing.T) {
	h, fake, lim, acct := setupLimited(t, fakeopenai.Config{RPM: 600})
	ctx := context.Background()

	// A first success teaches the limiter the account's limits.
	if err := h.ProcessTask(ctx, task(`{"model":"m","input":"hello","max_output_tokens":32}`)); err != nil {
		t.Fatal(err)
	}
	if s, _ := lim.Snapshot(ctx, acct); s.RampFraction != 1 {
		t.Fatalf("RampFraction before any slow_down = %v, want 1", s.RampFraction)
	}

	fake.SetMode(fakeopenai.ModeSlowDown, 0)
	err := h.ProcessTask(ctx, task(`{"model":"m","input":"again","max_output_tokens":32}`))
	var be *backoff.Error
	if !errors.As(err, &be) || be.Code != backoff.CodeSlowDown {
		t.Fatalf("want a slow_down error, got %v", err)
	}
	s, err := lim.Snapshot(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(s.RampFraction-0.5) > 0.01 || s.Requests.Limit != 300 {
		t.Fatalf("after slow_down: ramp fraction %v, requests limit %d; want 0.5 and 300", s.RampFraction, s.Requests.Limit)
	}
}

func TestHandlerTenantBudget(t *testing.T) {
	h, fake, lim, acct := setupLimited(t, fakeopenai.Config{RPM: 600})
	ctx := context.Background()
	if err := lim.SetTenantBudget(ctx, acct, "noisy", quota.TenantBudget{DailyRequests: 1}); err != nil {
		t.Fatal(err)
	}
	if err := h.ProcessTask(ctx, task(`{"model":"m","input":"one","max_output_tokens":32,"tenant":"noisy"}`)); err != nil {
		t.Fatal(err)
	}
	err := h.ProcessTask(ctx, task(`{"model":"m","input":"two","max_output_tokens":32,"tenant":"noisy"}`))
	var w *backoff.Deferral
	if !errors.As(err, &w) || backoff.IsFailure(err) {
		t.Fatalf("over its daily budget the tenant's task = %v, want a wait that is no failure", err)
	}
	if err := h.ProcessTask(ctx, task(`{"model":"m","input":"three","max_output_tokens":32,"tenant":"quiet"}`)); err != nil {
		t.Fatalf("another tenant held back: %v", err)
	}
	if n := fake.Stats().Requests; n != 2 {
		t.Fatalf("provider saw %d requests, want 2", n)
	}
}

func TestHandlerYieldsFairShare(t *testing.T) {
	f := setup(t, fakeopenai.Config{})
	ctx := context.Background()
	// 600 RPM, 1 s of burst (10 requests), turns booked up to 1 s ahead.
	lim, err := quota.New(f.rdb.Client, quota.Config{RPM: 600, Burst: time.Second, Schedule: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f.h.routes[0].lim = lim
	f.h.cfg.MaxInlineWait = time.Second
	f.h.yields = rate.NewLimiter(0.01, 1)
	cost := quota.Cost{Requests: 1, Tokens: 10}
	// B asks once; A takes the rest of the bucket and is then far ahead of
	// B, which has pending work: A's next scheduled turn is refused.
	if d, err := lim.Reserve(ctx, f.account, cost, 0, quota.WithTenant("B")); err != nil || !d.OK {
		t.Fatalf("Reserve for B = %+v, %v", d, err)
	}
	for i := 0; ; i++ {
		d, err := lim.Reserve(ctx, f.account, cost, 0, quota.WithTenant("A"))
		if err != nil || i > 20 {
			t.Fatalf("A never yielded: %+v, %v", d, err)
		}
		if d.FairShare {
			break
		}
	}
	// A's task yields too: handed back to asynq at once, so the slot can
	// take other work.
	err = f.h.ProcessTask(ctx, task(`{"model":"m","input":"one","max_output_tokens":32,"tenant":"A"}`))
	var w *backoff.Deferral
	if !errors.As(err, &w) || backoff.IsFailure(err) || !strings.Contains(w.Reason, "fair share") || w.Delay < time.Second {
		t.Fatalf("A's task while ahead of its fair share = %v, want it handed back to asynq (no failure, delay >= 1s)", err)
	}
	// Past YieldsPerSecond (here 1 per 100 s, used up above) a yielding
	// task waits in the handler and asks again: by then the bucket has
	// refilled, a request that fits now is admitted whatever its tenant's
	// share, and the task goes out. Without the bound a slot could cycle
	// through the tenant's backlog as fast as Redis answers.
	started := time.Now()
	if err := f.h.ProcessTask(ctx, task(`{"model":"m","input":"two","max_output_tokens":32,"tenant":"A"}`)); err != nil {
		t.Fatalf("A's task past the yield budget = %v, want it sent after an inline wait", err)
	}
	if took := time.Since(started); took < quota.FairRetry {
		t.Errorf("A's task went out after %v, before the fair-share refusal's wait (%v)", took, quota.FairRetry)
	}
	if n := f.fake.Stats().Requests; n != 1 {
		t.Fatalf("provider saw %d requests, want 1", n)
	}
	if r := waitReason(quota.Decision{FairShare: true}); !strings.Contains(r, "fair share") {
		t.Errorf("reason for a fair-share wait = %q", r)
	}
}
