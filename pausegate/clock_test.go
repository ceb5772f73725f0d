package pausegate

import (
	"context"
	"testing"
	"time"

	"github.com/promptq/promptq/internal/clock"
	"github.com/promptq/promptq/internal/keys"
)

// TestSkewedClockCannotEndPause: a gate whose host clock runs 15 minutes
// ahead neither ends a 10-minute pause (clear.lua reads Redis's clock) nor
// sets a pause that ends at the wrong time.
func TestSkewedClockCannotEndPause(t *testing.T) {
	t.Parallel()
	for _, skew := range []time.Duration{15 * time.Minute, -15 * time.Minute} {
		e := setup(t)
		ctx := context.Background()
		honest := e.gate(t, "honest", func(c *Config) { c.Clock = clock.Real{} })
		skewed := e.gate(t, "skewed", func(c *Config) { c.Clock = clock.Skewed{Offset: skew} })
		rec := mustPause(t, honest, e.acct, PauseRequest{Until: time.Now().Add(10 * time.Minute), Kind: KindManual, Reason: "admin"})
		if err := skewed.Tick(ctx, e.acct); err != nil {
			t.Fatal(err)
		}
		got, active, err := honest.Check(ctx, e.acct)
		if err != nil || !active || !got.Until.Equal(rec.Until) {
			t.Fatalf("skew %v: after the skewed gate's tick: %+v active=%v err=%v; want the pause until %v", skew, got, active, err, rec.Until)
		}
		// A pause set by the skewed host lasts what it asked for on Redis's clock.
		acct2 := e.acct + "-2"
		t.Cleanup(func() { e.r.Client.Del(context.Background(), keys.Pause(acct2)) })
		r2 := mustPause(t, skewed, acct2, PauseRequest{Until: skewed.cfg.Clock.Now().Add(20 * time.Second), Kind: "rate_limit"})
		if d := time.Until(r2.Until); d < 15*time.Second || d > 25*time.Second {
			t.Fatalf("skew %v: a 20s pause set by the skewed host ends in %v (Redis's clock), want about 20s", skew, d)
		}
	}
}
