package quota

import (
	"testing"
	"time"
)

// Sync applies a stream's opening headers at once and keeps the reservation
// in flight; the settle that follows closes it.
func TestSyncAtStreamOpen(t *testing.T) {
	e := setupLimiter(t, Config{Probe: -1})
	r := e.mustOK(Cost{Requests: 1, Tokens: 100}, 50)
	info := Unknown
	info.Requests = Bucket{Limit: 600, Remaining: 590, Reset: time.Second}
	if err := e.l.Sync(e.ctx, r, info); err != nil {
		t.Fatal(err)
	}
	s := e.snap()
	if s.Requests.Limit != 600 {
		t.Fatalf("limit after sync = %d, want 600 learned at stream open", s.Requests.Limit)
	}
	if s.InFlight != 1 {
		t.Fatalf("in flight after sync = %d, want the reservation kept", s.InFlight)
	}
	// Its own reservation is already in the provider's remaining: not subtracted again.
	if s.Requests.Available < 589 || s.Requests.Available > 591 {
		t.Fatalf("available after sync = %.1f, want about 590", s.Requests.Available)
	}
	if err := e.l.Settle(e.ctx, r, info, &Usage{InputTokens: 50, OutputTokens: 20, TotalTokens: 70}); err != nil {
		t.Fatal(err)
	}
	if s := e.snap(); s.InFlight != 0 {
		t.Fatalf("in flight after settle = %d, want 0", s.InFlight)
	}
}
