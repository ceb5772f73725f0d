package pausegate

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/clock"
	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/internal/testutil"
)

// The gate's QueueController is satisfied by asynq's inspector.
var _ QueueController = (*asynq.Inspector)(nil)

// newAsynqQueue returns an inspector and a queue that exists in asynq (one
// task enqueued), deleted with its tasks at cleanup.
func newAsynqQueue(t testing.TB, r *testutil.Redis, queue string) *asynq.Inspector {
	t.Helper()
	opt, err := asynq.ParseRedisURI(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(opt)
	t.Cleanup(func() { _ = client.Close() })
	if _, err := client.Enqueue(asynq.NewTask("pausegate:test", nil), asynq.Queue(queue)); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() {
		_ = insp.Close()
		testutil.DeleteAsynqQueue(t, r.Client, queue)
	})
	return insp
}

func queuePaused(t *testing.T, insp *asynq.Inspector, q string) bool {
	t.Helper()
	info, err := insp.GetQueueInfo(q)
	if err != nil {
		t.Fatal(err)
	}
	return info.Paused
}

func TestAsynqInspectorPauseUnpause(t *testing.T) {
	r := testutil.RequireReal(t)
	ctx := context.Background()
	acct := testutil.Name(t)
	queue := "q-" + acct
	insp := newAsynqQueue(t, r, queue)
	clk := clock.NewFake(time.Now())
	t.Cleanup(func() {
		r.Client.Del(ctx, keys.Pause(acct), keys.Queues(acct))
		r.Client.SRem(ctx, keys.Accounts(), acct)
	})

	g, err := New(r.Client, Config{Clock: clk, Queues: insp})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Register(ctx, acct, []string{queue}); err != nil {
		t.Fatal(err)
	}

	// asynq's own errors for a repeated pause/unpause, which the gate ignores.
	if err := insp.UnpauseQueue(queue); err == nil || !isAlready(err, "is not paused") {
		t.Fatalf("UnpauseQueue on running queue = %v", err)
	}

	mustPause(t, g, acct, PauseRequest{Until: clk.Now().Add(time.Minute), Kind: KindQuota})
	if !queuePaused(t, insp, queue) {
		t.Fatal("queue not paused in asynq")
	}
	if err := insp.PauseQueue(queue); err == nil || !isAlready(err, "is already paused") {
		t.Fatalf("PauseQueue on paused queue = %v", err)
	}
	// Extending the pause re-pauses: "already paused" must not surface.
	mustPause(t, g, acct, PauseRequest{Until: clk.Now().Add(time.Hour), Kind: KindQuota})

	clk.Advance(time.Hour)
	if err := g.Tick(ctx, acct); err != nil {
		t.Fatal(err)
	}
	if queuePaused(t, insp, queue) {
		t.Fatal("queue still paused in asynq after the pause expired")
	}
}

// BenchmarkPauseResumeLong measures one long Pause through the gate with a real
// asynq inspector (script + publish + SMEMBERS + PauseQueue) followed by a
// manual Resume.
func BenchmarkPauseResumeLong(b *testing.B) {
	r := testutil.NewRedis(b)
	if !r.Real() {
		b.Skip("needs a real Redis: set TEST_REDIS_URL")
	}
	ctx := context.Background()
	acct := testutil.Name(b)
	queue := "q-" + acct
	insp := newAsynqQueue(b, r, queue)
	b.Cleanup(func() {
		r.Client.Del(ctx, keys.Pause(acct), keys.Queues(acct))
		r.Client.SRem(ctx, keys.Accounts(), acct)
	})
	g, err := New(r.Client, Config{Queues: insp})
	if err != nil {
		b.Fatal(err)
	}
	if err := g.Register(ctx, acct, []string{queue}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := g.Pause(ctx, acct, PauseRequest{Until: time.Now().Add(time.Hour), Kind: KindQuota}); err != nil {
			b.Fatal(err)
		}
		if _, err := g.Resume(ctx, acct); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnpauseToFirstTask measures what pausing asynq queues costs at the
// end of a pause: the time from UnpauseQueue until an idle asynq server
// (default TaskCheckInterval) starts a waiting task. This figure is why short
// pauses are enforced by the record only (see ShortPauseDefault). Run with
// -benchtime=20x.
func BenchmarkUnpauseToFirstTask(b *testing.B) {
	r := testutil.NewRedis(b)
	if !r.Real() {
		b.Skip("needs a real Redis: set TEST_REDIS_URL")
	}
	queue := "q-" + testutil.Name(b)
	insp := newAsynqQueue(b, r, queue)
	opt, _ := asynq.ParseRedisURI(r.URL)
	started := make(chan time.Time, 1)
	srv := asynq.NewServer(opt, asynq.Config{Queues: map[string]int{queue: 1}, Concurrency: 1, LogLevel: asynq.ErrorLevel})
	mux := asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		started <- time.Now()
		return nil
	})
	if err := srv.Start(mux); err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	<-started // drain the task newAsynqQueue enqueued
	client := asynq.NewClientFromRedisClient(redis.NewClient(&redis.Options{Addr: r.Client.Options().Addr, DB: r.Client.Options().DB}))
	defer client.Close()

	var total time.Duration
	for b.Loop() {
		if err := insp.PauseQueue(queue); err != nil {
			b.Fatal(err)
		}
		if _, err := client.Enqueue(asynq.NewTask("pausegate:test", nil), asynq.Queue(queue)); err != nil {
			b.Fatal(err)
		}
		// Let the server find the queue paused and go idle, as it would
		// during a real pause. A timer, not a wait for something to happen.
		<-time.After(1500 * time.Millisecond)
		t0 := time.Now()
		if err := insp.UnpauseQueue(queue); err != nil {
			b.Fatal(err)
		}
		select {
		case t1 := <-started:
			total += t1.Sub(t0)
		case <-time.After(10 * time.Second):
			b.Fatal("task not started 10s after unpause")
		}
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-lag/op")
	b.ReportMetric(0, "ns/op")
}
