package tests

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/internal/testutil"
	"github.com/promptq/promptq/pausegate"
)

// TestFaultPauseResumeRaces (issue 16, items 4 and 6): 1,000 races of a 429
// pause (a worker's gate) against `promptq resume` (an admin gate, as the
// CLI builds it), on a redis-server of the test's own with asynq's
// inspector. Before the fix a race could leave the asynq queue paused with
// no pause record, and no tick repaired it. After each race (and after a
// record that vanished, as one expiring at until + 24 h does) one tick of
// the worker's gate must leave the queue paused exactly when the record is
// active, and a second queue an operator paused in asynqmon must stay
// paused throughout.
//
// Go-level rather than process-level: 1,000 races of `promptq resume`
// processes against worker processes would take minutes and race far less
// often (process start dominates); the gates run the same code.
func TestFaultPauseResumeRaces(t *testing.T) {
	const races = 1000
	srv := startRedisServer(t)
	ctx := context.Background()
	rdb := redisClient(t, srv.URL)
	opt, err := asynq.ParseRedisURI(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	acct := "a-" + testutil.Name(t)
	q, opQ := "q-"+testutil.Name(t), "op-"+testutil.Name(t)
	client := asynq.NewClient(opt)
	defer client.Close()
	for _, name := range []string{q, opQ} { // asynq knows a queue once it has a task
		if _, err := client.Enqueue(asynq.NewTask("race:test", nil), asynq.Queue(name)); err != nil {
			t.Fatal(err)
		}
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	worker, err := pausegate.New(rdb, pausegate.Config{Queues: pausegate.AsynqQueues(insp), SetBy: "worker"})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := pausegate.New(rdb, pausegate.Config{Queues: pausegate.AsynqQueues(insp), SetBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if err := worker.Register(ctx, acct, []string{q, opQ}); err != nil {
		t.Fatal(err)
	}
	if err := insp.PauseQueue(opQ); err != nil { // an operator, in asynqmon
		t.Fatal(err)
	}
	paused := func(name string) bool {
		info, err := insp.GetQueueInfo(name)
		if err != nil {
			t.Fatal(err)
		}
		return info.Paused
	}

	var strandedBeforeTick, pausedAfter, expired int
	for i := range races {
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := worker.Pause(ctx, acct, pausegate.PauseRequest{Until: time.Now().Add(time.Hour), Kind: pausegate.KindQuota, Reason: "insufficient_quota"}); err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := admin.Resume(ctx, acct); err != nil {
				t.Error(err)
			}
		}()
		wg.Wait()
		if i%10 == 9 {
			// The record vanishes with nobody unpausing (expiry at until + 24 h).
			rdb.Del(ctx, keys.Pause(acct))
			expired++
		}
		_, active, err := worker.Check(ctx, acct)
		if err != nil {
			t.Fatal(err)
		}
		if !active && paused(q) {
			strandedBeforeTick++
		}
		if err := worker.Tick(ctx, acct); err != nil {
			t.Fatalf("race %d: tick: %v", i, err)
		}
		_, active, err = worker.Check(ctx, acct)
		if err != nil {
			t.Fatal(err)
		}
		if p := paused(q); p != active {
			t.Fatalf("race %d: after a tick queue paused=%v with pause record active=%v", i, p, active)
		}
		if active {
			pausedAfter++
		}
		if !paused(opQ) {
			t.Fatalf("race %d: the queue an operator paused was unpaused", i)
		}
	}
	t.Logf("%d races (%d with the record vanishing): %d left the queue paused without a record before the tick, 0 after it; %d ended paused (record and queue), %d resumed",
		races, expired, strandedBeforeTick, pausedAfter, races-pausedAfter)
	if strandedBeforeTick == 0 {
		t.Error("no race left the queue paused without a record before the tick: the test did not test anything")
	}
}
