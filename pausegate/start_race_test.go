package pausegate

import (
	"context"
	"testing"
	"time"

	"github.com/promptq/promptq/internal/keys"
)

// pausedBefore is a QueueController that answers QueuePaused with the state
// at the call, after waiting for release: the gate that uses it acts on a
// picture another gate changes meanwhile.
type pausedBefore struct {
	*fakeQueues
	entered, release chan struct{}
}

func (p *pausedBefore) QueuePaused(q string) (bool, error) {
	was, err := p.fakeQueues.QueuePaused(q)
	select {
	case p.entered <- struct{}{}:
		<-p.release
	default:
	}
	return was, err
}

// TestSiblingGatesPauseOnce: two gates of one account that pause its queue
// at the same moment (workers starting together under an admin pause) leave
// one hold, so the resume releases the queue. Before, the gate that found
// the queue paused already took it for an operator's pause and deleted the
// hold: the queue stayed paused after the resume with nothing to release it
// (TestFaultSkewedWorkerClock, 1 run in a few under load).
func TestSiblingGatesPauseOnce(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	admin := e.gate(t, "admin", func(c *Config) { c.Queues = nil }) // writes the record only
	if _, err := admin.Pause(ctx, e.acct, PauseRequest{Until: e.clk.Now().Add(10 * time.Minute), Reason: "admin", Kind: KindManual}); err != nil {
		t.Fatal(err)
	}
	slow := &pausedBefore{fakeQueues: e.qs, entered: make(chan struct{}), release: make(chan struct{})}
	w1 := e.gate(t, "w1")
	w3 := e.gate(t, "w3", func(c *Config) { c.Queues = slow })

	done := make(chan error, 1)
	go func() { done <- w3.Tick(ctx, e.acct) }()
	<-slow.entered // w3 saw no hold and the queue running
	if err := w1.Tick(ctx, e.acct); err != nil {
		t.Fatal(err)
	}
	if !e.qs.isPaused(e.queue) {
		t.Fatal("w1 did not pause the queue")
	}
	close(slow.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n, _ := e.r.Client.HLen(ctx, keys.GateQueues(e.acct)).Result(); n != 1 {
		t.Fatalf("%d holds after both gates paused, want 1", n)
	}
	if _, err := w1.Resume(ctx, e.acct); err != nil {
		t.Fatal(err)
	}
	if e.qs.isPaused(e.queue) {
		t.Error("the queue stayed paused after the resume")
	}
}
