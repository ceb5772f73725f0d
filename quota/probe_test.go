package quota

import (
	"testing"
	"time"
)

// A cold account (no limit known, nothing settled) admits one request at a
// time until the first response is settled; after that, unknown limits do
// not constrain.
func TestColdStartProbe(t *testing.T) {
	e := setupLimiter(t, Config{})
	first := e.mustOK(Cost{Requests: 1, Tokens: 100}, 50)
	d := e.reserve(Cost{Requests: 1, Tokens: 100}, 50)
	if d.OK || d.Wait <= 0 || !d.Probe {
		t.Fatalf("second reservation during the probe: %+v, want a short wait, held by the probe", d)
	}
	if s := e.snap(); !s.Probing {
		t.Fatalf("snapshot during the probe: Probing false, want true (in flight %d)", s.InFlight)
	}
	if err := e.l.Settle(e.ctx, first, Unknown, &Usage{InputTokens: 50, OutputTokens: 10, TotalTokens: 60}); err != nil {
		t.Fatal(err)
	}
	if s := e.snap(); s.Probing {
		t.Fatal("snapshot after the first response: Probing true, want false")
	}
	for range 20 {
		e.mustOK(Cost{Requests: 1, Tokens: 100}, 50)
	}
}

func TestProbeOffAndConfiguredLimits(t *testing.T) {
	e := setupLimiter(t, Config{Probe: -1})
	e.mustOK(Cost{Requests: 1, Tokens: 100}, 50)
	e.mustOK(Cost{Requests: 1, Tokens: 100}, 50)

	// With a configured cap the bucket itself guards the cold start.
	e2 := setupLimiter(t, Config{RPM: 600})
	e2.mustOK(Cost{Requests: 1, Tokens: 100}, 50)
	e2.mustOK(Cost{Requests: 1, Tokens: 100}, 50)
}

// With Schedule, a cost that fits within the schedule window is admitted at
// once with the wait before its turn; waiters line up first come, first served.
func TestScheduledAdmission(t *testing.T) {
	e := setupLimiter(t, Config{RPM: 60, Burst: time.Second, Schedule: 2500 * time.Millisecond})
	var waits []time.Duration
	for range 3 {
		d := e.reserve(Cost{Requests: 1}, 0)
		if !d.OK {
			t.Fatalf("reservation within the schedule window refused: %+v", d)
		}
		waits = append(waits, d.Wait)
	}
	if waits[0] != 0 || waits[1] != time.Second || waits[2] != 2*time.Second {
		t.Fatalf("scheduled waits = %v, want [0s 1s 2s]", waits)
	}
	d := e.reserve(Cost{Requests: 1}, 0)
	if d.OK || d.Wait != 3*time.Second {
		t.Fatalf("beyond the window: %+v, want refused with a 3s wait", d)
	}
	e.clk.Advance(3 * time.Second)
	if d := e.reserve(Cost{Requests: 1}, 0); !d.OK || d.Wait != 0 {
		t.Fatalf("after the debt is paid: %+v", d)
	}
}

// A provider that quantises its limit per second reports a small remaining
// with a short reset: the limiter learns that capacity, so an idle moment
// does not let a minute's worth of requests burst into 429s.
func TestLearnsBucketCapacity(t *testing.T) {
	e := setupLimiter(t, Config{Probe: -1})
	r := e.mustOK(Cost{Requests: 1, Tokens: 10}, 0)
	info := Unknown
	info.Requests = Bucket{Limit: 300, Remaining: 4, Reset: 200 * time.Millisecond} // 4 + 0.2s*5/s = 5
	if err := e.l.Settle(e.ctx, r, info, &Usage{TotalTokens: 10}); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(10 * time.Second) // idle: a minute-sized bucket would refill to 50
	for i := range 5 {
		if d := e.reserve(Cost{Requests: 1, Tokens: 10}, 0); !d.OK {
			t.Fatalf("reservation %d of the learned capacity refused: %+v", i+1, d)
		}
	}
	if d := e.reserve(Cost{Requests: 1, Tokens: 10}, 0); d.OK {
		t.Fatal("admitted a sixth request into a bucket of 5")
	}
	if s := e.snap(); s.Requests.Limit != 300 {
		t.Fatalf("learned limit %d, want 300", s.Requests.Limit)
	}
}
