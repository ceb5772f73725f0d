package pausegate

import (
	"context"
	"testing"
	"time"

	"github.com/promptq/promptq/internal/keys"
)

// TestPauseModel: a model pause holds one model of the account, is only
// ever extended, pauses no queue, and ends with the account's resume.
func TestPauseModel(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	t.Cleanup(func() { e.r.Client.Del(context.Background(), keys.PauseModels(e.acct)) })
	g := e.gate(t, "w1")
	now := e.clk.Now()

	u1, err := g.PauseModel(ctx, e.acct, "gpt-x", now.Add(time.Hour), "model_not_found")
	if err != nil || u1.Sub(now) < time.Hour-time.Second || u1.Sub(now) > time.Hour+time.Second {
		t.Fatalf("PauseModel: %v, %v", u1, err)
	}
	// Shorter: not shortened.
	if u2, err := g.PauseModel(ctx, e.acct, "gpt-x", now.Add(time.Minute), "again"); err != nil || !u2.Equal(u1) {
		t.Fatalf("shorter pause: %v, %v; want %v kept", u2, err, u1)
	}
	ps, err := g.ModelPauses(ctx, e.acct)
	if err != nil || len(ps) != 1 || ps[0].Model != "gpt-x" || !ps[0].Until.Equal(u1) {
		t.Fatalf("ModelPauses: %+v, %v", ps, err)
	}
	if _, active, _ := g.Check(ctx, e.acct); active {
		t.Error("a model pause paused the whole account")
	}
	if p, u := e.qs.counts(); p != 0 || u != 0 {
		t.Errorf("a model pause touched queues: %d pauses, %d unpauses", p, u)
	}
	if ttl := e.r.Client.PTTL(ctx, keys.PauseModels(e.acct)).Val(); ttl < time.Hour || ttl > time.Hour+RecordGrace+time.Second {
		t.Errorf("model pauses expire in %v, want the pause + grace", ttl)
	}
	was, err := g.Resume(ctx, e.acct)
	if err != nil || !was {
		t.Fatalf("Resume: %v, %v; want it to report the model pause ended", was, err)
	}
	if ps, _ := g.ModelPauses(ctx, e.acct); len(ps) != 0 {
		t.Errorf("model pauses after resume: %+v", ps)
	}
}
