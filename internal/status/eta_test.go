package status

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/promptq/promptq/internal/testutil"
)

// Needs a real Redis: on miniredis asynq's completed tasks carry no
// completion time to measure.
func TestThroughputFromCompletedTasks(t *testing.T) {
	r := testutil.RequireReal(t)
	opt, err := asynq.ParseRedisURI(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := testutil.Name(t)
	client := asynq.NewClient(opt)
	defer client.Close()
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	t.Cleanup(func() { testutil.DeleteAsynqQueue(t, r.Client, q) })

	const done = 8
	for range done {
		if _, err := client.Enqueue(asynq.NewTask("t", nil), asynq.Queue(q), asynq.Retention(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	processed := make(chan struct{}, done)
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: 1, Queues: map[string]int{q: 1}, LogLevel: asynq.FatalLevel})
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		time.Sleep(150 * time.Millisecond) // spread over more than a second (asynq keeps whole seconds)
		processed <- struct{}{}
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	for range done {
		select {
		case <-processed:
		case <-time.After(30 * time.Second):
			t.Fatal("tasks not processed")
		}
	}
	srv.Shutdown()
	// A backlog that waits while nothing runs.
	for range 4 {
		if _, err := client.Enqueue(asynq.NewTask("t", nil), asynq.Queue(q)); err != nil {
			t.Fatal(err)
		}
	}
	info, err := insp.GetQueueInfo(q)
	if err != nil {
		t.Fatal(err)
	}
	if info.Completed != done {
		t.Fatalf("completed = %d, want %d", info.Completed, done)
	}
	qs := Queue{Pending: info.Pending, Completed: info.Completed}
	th := throughput(insp, q, qs, time.Now(), Options{})
	if th.Source != "observed" || th.Samples != done || th.PerSecond <= 0 || th.Backlog != 4 {
		t.Fatalf("throughput = %+v, want observed over %d samples with a backlog of 4", th, done)
	}
	if want := int64(math.Ceil(4000 / th.PerSecond)); th.ETAMs == nil || *th.ETAMs != want {
		t.Fatalf("ETA = %v ms, want backlog / rate = %d ms", th.ETAMs, want)
	}
	// Outside the window nothing is observed; the assumed rate takes over.
	th = throughput(insp, q, qs, time.Now().Add(time.Hour), Options{AssumedRate: 2})
	if th.Source != "assumed" || *th.ETAMs != 2000 {
		t.Fatalf("assumed: %+v", th)
	}
	if th = throughput(insp, q, qs, time.Now().Add(time.Hour), Options{}); th.ETAMs != nil || th.Source != "none" {
		t.Fatalf("no rate: %+v", th)
	}
}
