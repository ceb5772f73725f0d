package pausegate

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/promptq/promptq/internal/keys"
)

func mustTick(t *testing.T, g *Gate, acct string) {
	t.Helper()
	if err := g.Tick(context.Background(), acct); err != nil {
		t.Fatal(err)
	}
}

// A record that disappears (expired at until + RecordGrace, or deleted by a
// resume that raced the pause) no longer leaves the queue paused: the next
// tick unpauses the queue the gate paused.
func TestTickUnpausesQueueWithoutRecord(t *testing.T) {
	e := setup(t)
	g := e.gate(t, "g")
	mustPause(t, g, e.acct, PauseRequest{Until: e.clk.Now().Add(time.Hour), Kind: KindQuota})
	if !e.qs.isPaused(e.queue) {
		t.Fatal("a long pause did not pause the queue")
	}
	e.r.Client.Del(context.Background(), keys.Pause(e.acct))
	mustTick(t, g, e.acct)
	if e.qs.isPaused(e.queue) {
		t.Fatal("the queue stayed paused without a pause record")
	}
	if n := e.r.Client.HLen(context.Background(), keys.GateQueues(e.acct)).Val(); n != 0 {
		t.Fatalf("%d queue holds left after the release", n)
	}
}

// A queue an operator paused stays paused through an automatic pause, its
// expiry and a `promptq resume` of the account.
func TestOperatorPausedQueueStaysPaused(t *testing.T) {
	e := setup(t)
	g := e.gate(t, "g")
	if err := e.qs.PauseQueue(e.queue); err != nil { // asynqmon
		t.Fatal(err)
	}
	mustPause(t, g, e.acct, PauseRequest{Until: e.clk.Now().Add(time.Hour), Kind: KindQuota})
	st, err := g.Status(context.Background(), e.acct)
	if err != nil || len(st.HeldQueues) != 0 {
		t.Fatalf("Status = %+v, %v; want no queue held by the gate", st, err)
	}
	e.clk.Advance(time.Hour)
	mustTick(t, g, e.acct)
	if !e.qs.isPaused(e.queue) {
		t.Fatal("an expiring automatic pause unpaused a queue an operator paused")
	}
	mustPause(t, g, e.acct, PauseRequest{Until: e.clk.Now().Add(time.Hour), Kind: KindQuota})
	if _, err := g.Resume(context.Background(), e.acct); err != nil {
		t.Fatal(err)
	}
	if !e.qs.isPaused(e.queue) {
		t.Fatal("resuming the account unpaused a queue an operator paused")
	}
}

// A queue the gate paused that an operator resumes in asynqmon during the
// pause is an operator resume of the account: the record is cleared and the
// queue is not paused again.
func TestOperatorResumeOfQueueResumesAccount(t *testing.T) {
	e := setup(t)
	g := e.gate(t, "g")
	mustPause(t, g, e.acct, PauseRequest{Until: e.clk.Now().Add(time.Hour), Kind: KindQuota, Reason: "insufficient_quota"})
	if err := e.qs.UnpauseQueue(e.queue); err != nil { // asynqmon
		t.Fatal(err)
	}
	mustTick(t, g, e.acct)
	mustTick(t, g, e.acct)
	if e.qs.isPaused(e.queue) {
		t.Fatal("the gate paused again a queue an operator resumed")
	}
	if _, active, _ := g.Check(context.Background(), e.acct); active {
		t.Fatal("the account is still paused after an operator resumed its queue")
	}
}

// A queue shared with another active account is not paused: the record
// alone gates the paused account. When the other account stops consuming,
// the queue is paused; when it comes back, unpaused again.
func TestSharedQueueIsNotPausedForOthers(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	other := e.acct + "-b"
	t.Cleanup(func() {
		e.r.Client.Del(ctx, keys.Pause(other), keys.Queues(other), keys.GateQueues(other), keys.Consumers(other))
		e.r.Client.SRem(ctx, keys.Accounts(), other)
	})
	g := e.gate(t, "g")
	gb := e.gate(t, "gb")
	if err := gb.Register(ctx, other, []string{e.queue}); err != nil {
		t.Fatal(err)
	}
	if _, err := gb.consumers(ctx, other, "gb", time.Minute); err != nil {
		t.Fatal(err)
	}
	mustPause(t, g, e.acct, PauseRequest{Until: e.clk.Now().Add(time.Hour), Kind: KindQuota})
	if e.qs.isPaused(e.queue) || !g.Shared(e.acct) {
		t.Fatalf("queue paused %v, Shared %v; want running, shared", e.qs.isPaused(e.queue), g.Shared(e.acct))
	}
	if st, _ := g.Status(ctx, e.acct); !slices.Equal(st.SharedQueues, []string{e.queue}) {
		t.Fatalf("Status.SharedQueues = %v, want [%s]", st.SharedQueues, e.queue)
	}

	e.clk.Advance(2 * time.Minute) // the other account's gate stopped marking itself
	mustTick(t, g, e.acct)
	if !e.qs.isPaused(e.queue) || g.Shared(e.acct) {
		t.Fatal("queue not paused once no other active account consumed it")
	}
	if _, err := gb.consumers(ctx, other, "gb", time.Minute); err != nil {
		t.Fatal(err)
	}
	mustTick(t, g, e.acct)
	if e.qs.isPaused(e.queue) {
		t.Fatal("queue still paused after another active account came back")
	}

	// Both paused: the queue stays paused until the last resume.
	mustPause(t, gb, other, PauseRequest{Until: e.clk.Now().Add(time.Hour), Kind: KindQuota})
	mustTick(t, g, e.acct)
	if !e.qs.isPaused(e.queue) {
		t.Fatal("queue not paused with both of its accounts paused")
	}
	if _, err := g.Resume(ctx, e.acct); err != nil {
		t.Fatal(err)
	}
	if !e.qs.isPaused(e.queue) {
		t.Fatal("resuming one account unpaused the queue the other's pause holds")
	}
	if _, err := gb.Resume(ctx, other); err != nil {
		t.Fatal(err)
	}
	if e.qs.isPaused(e.queue) {
		t.Fatal("queue paused after both accounts resumed")
	}
}
