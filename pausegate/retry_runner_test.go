package pausegate

import (
	"context"
	"sync"
	"testing"
	"time"
)

// retryQueues is a fakeQueues that also releases parked retries.
type retryQueues struct {
	*fakeQueues
	mu  sync.Mutex
	ran []string
}

func (r *retryQueues) RunAllRetryTasks(q string) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ran = append(r.ran, q)
	return 3, nil
}

func TestManualResumeReleasesParkedRetries(t *testing.T) {
	e := setup(t)
	rq := &retryQueues{fakeQueues: e.qs}
	g := e.gate(t, "admin", func(c *Config) { c.Queues = rq })
	ctx := context.Background()

	// Nothing paused: resume releases nothing.
	if _, err := g.Resume(ctx, e.acct); err != nil {
		t.Fatal(err)
	}
	if len(rq.ran) != 0 {
		t.Fatalf("released retries of an account that was not paused: %v", rq.ran)
	}
	mustPause(t, g, e.acct, PauseRequest{Until: e.clk.Now().Add(time.Hour), Kind: KindQuota, Reason: "billing"})
	if was, err := g.Resume(ctx, e.acct); err != nil || !was {
		t.Fatalf("Resume = %v, %v", was, err)
	}
	if len(rq.ran) != 1 || rq.ran[0] != e.queue {
		t.Fatalf("retries released on %v, want [%s]", rq.ran, e.queue)
	}
}
