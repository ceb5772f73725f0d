package status

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/promptq/promptq/internal/testutil"
	"github.com/promptq/promptq/pausegate"
)

func TestETA(t *testing.T) {
	now := time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC)
	ms := func(v int64) *int64 { return &v }
	tests := []struct {
		name      string
		backlog   int
		perSecond float64
		hold      *hold
		want      *int64
	}{
		{"no rate", 10, 0, nil, nil},
		{"running", 10, 2, nil, ms(5000)},
		{"59-minute pause", 10, 2, &hold{until: now.Add(59 * time.Minute)}, ms(59*60_000 + 5000)},
		{"pause already over", 10, 2, &hold{until: now.Add(-time.Second)}, ms(5000)},
		{"paused until resumed", 10, 2, &hold{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := eta(tt.backlog, tt.perSecond, tt.hold, now)
			if (got == nil) != (tt.want == nil) || got != nil && *got != *tt.want {
				t.Fatalf("eta = %v, want %v", deref(got), deref(tt.want))
			}
		})
	}
}

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestETADuringPause: the status report of a queue whose only account is
// paused says so, and its ETA is the pause's remaining time plus the
// backlog's; an indefinite pause has no ETA.
func TestETADuringPause(t *testing.T) {
	r := testutil.NewRedis(t)
	ctx := context.Background()
	opt, err := asynq.ParseRedisURI(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	q, acct := testutil.Name(t), testutil.Name(t)
	testutil.CleanupAccount(t, r.Client, acct)
	t.Cleanup(func() { testutil.DeleteAsynqQueue(t, r.Client, q) })
	client := asynq.NewClient(opt)
	defer client.Close()
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	for range 4 {
		if _, err := client.Enqueue(asynq.NewTask("t", nil), asynq.Queue(q)); err != nil {
			t.Fatal(err)
		}
	}
	gate, err := pausegate.New(r.Client, pausegate.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := gate.Register(ctx, acct, []string{q}); err != nil {
		t.Fatal(err)
	}
	o := Options{AssumedRate: 2} // 4 tasks: 2 s of work
	report := func() *Throughput {
		t.Helper()
		rep, err := CollectWith(ctx, r.Client, insp, []string{acct}, o)
		if err != nil {
			t.Fatal(err)
		}
		th := rep.Queues[q].Throughput
		if th == nil {
			t.Fatalf("no throughput for %s: %+v", q, rep.Queues)
		}
		return th
	}

	if th := report(); th.Paused || th.ETAMs == nil || *th.ETAMs != 2000 {
		t.Fatalf("running: %+v (eta %v), want not paused, eta 2000 ms", th, deref(th.ETAMs))
	}

	until := time.Now().Add(59 * time.Minute)
	if _, err := gate.Pause(ctx, acct, pausegate.PauseRequest{Until: until, Reason: "insufficient_quota", Kind: pausegate.KindQuota}); err != nil {
		t.Fatal(err)
	}
	th := report()
	if !th.Paused || th.PauseReason != "insufficient_quota" || th.PausedUntil == nil || *th.PausedUntil != until.UTC().Format(time.RFC3339) {
		t.Fatalf("paused: %+v, want paused until %v (insufficient_quota)", th, until)
	}
	// The pause's remaining time (a little under 59 min by now) plus 2 s.
	if th.ETAMs == nil || *th.ETAMs <= 58*60_000+2000 || *th.ETAMs > 59*60_000+2000 {
		t.Fatalf("eta during a 59-minute pause = %v ms, want 59 min + 2 s", deref(th.ETAMs))
	}

	if _, err := gate.Resume(ctx, acct); err != nil {
		t.Fatal(err)
	}
	if _, err := gate.Pause(ctx, acct, pausegate.PauseRequest{Reason: "manual pause", Kind: pausegate.KindManual}); err != nil {
		t.Fatal(err)
	}
	if th := report(); !th.Paused || th.PausedUntil != nil || th.ETAMs != nil || th.PauseReason != "manual pause" {
		t.Fatalf("indefinite pause: %+v (eta %v), want paused, no until, no ETA", th, deref(th.ETAMs))
	}
}
