package quota

import (
	"testing"
	"time"
)

// Requests sent a few ms apart can reach the provider in either order, so a
// response's remaining figure may leave out an in-flight request sent just
// before it. The header sync must not take that figure as the level: it
// over-estimated the bucket by a whole request, and a reservation scheduled
// on it got a 429 (remaining 0, the provider at 0.99 of the 1 needed).
func TestHeaderSyncReordering(t *testing.T) {
	// A 5-request bucket refilling 5/s (0.005 per ms), full at the start.
	cfg := Config{RPM: 300, Burst: time.Second, Schedule: 2 * time.Second}
	reqs := func(rem int64) HeaderInfo { return hi(-1, rem, -1, -1) }
	tests := []struct {
		name string
		run  func(e *limEnv)
		want float64 // requests available afterwards
	}{{
		// a is sent 1ms before b but reaches the provider after it: b's
		// answer (4 left) does not include a. The old sync set the level to
		// 4; the provider will hold 5 - 2 + 0.4 = 3.4 once a lands.
		name: "overtaken request still in flight",
		run: func(e *limEnv) {
			e.mustOK(Cost{Requests: 1}, 0) // a
			e.clk.Advance(time.Millisecond)
			b := e.mustOK(Cost{Requests: 1}, 0)
			e.clk.Advance(80 * time.Millisecond)
			e.settle(b, reqs(4))
		},
		want: 5 - 2 + 0.405, // the local model, inside the provider's [3, 4]
	}, {
		// s is sent first, reaches the provider after y, and settles first
		// (its answer, 3 left, counts both). y's answer (4 left) then misses
		// s, which is no longer in flight: it may lower the level, not raise it.
		name: "overtaken request already settled",
		run: func(e *limEnv) {
			s := e.mustOK(Cost{Requests: 1}, 0)
			e.clk.Advance(time.Millisecond)
			y := e.mustOK(Cost{Requests: 1}, 0)
			e.clk.Advance(50 * time.Millisecond)
			e.settle(s, reqs(3)) // y in flight and sent after s: 3 - 1
			e.clk.Advance(30 * time.Millisecond)
			e.settle(y, reqs(4))
		},
		want: 2 + 0.15,
	}, {
		// Sent further apart than the reorder window, a surely reached the
		// provider before b: b's answer is the level, raised if need be.
		name: "request sent before the window is counted by the provider",
		run: func(e *limEnv) {
			e.mustOK(Cost{Requests: 1}, 0)
			e.clk.Advance(ReorderWindow + 5*time.Millisecond)
			b := e.mustOK(Cost{Requests: 1}, 0)
			e.clk.Advance(50 * time.Millisecond)
			e.settle(b, reqs(4))
		},
		want: 4,
	}, {
		// Inside the interval the provider's figure allows, the local
		// model, which saw every reservation, is kept.
		name: "a level inside the interval is left alone",
		run: func(e *limEnv) {
			e.mustOK(Cost{Requests: 4}, 0)
			e.clk.Advance(time.Millisecond)
			b := e.mustOK(Cost{Requests: 1}, 0)
			e.clk.Advance(10 * time.Millisecond)
			e.settle(b, reqs(4)) // 4 left after b: between 0 and 4 now
		},
		want: 5 - 5 + 0.055,
	}, {
		// Below the interval, capacity the local model wrongly holds back
		// (here a debit kept for an outcome the provider never charged) is
		// given back, up to the interval's bottom.
		name: "a level below the interval is raised to its bottom",
		run: func(e *limEnv) {
			x := e.mustOK(Cost{Requests: 3}, 0)
			e.clk.Advance(100 * time.Millisecond)
			if err := e.l.Settle(e.ctx, x, Unknown, nil); err != nil {
				t.Fatal(err)
			}
			e.mustOK(Cost{Requests: 1}, 0) // a
			e.clk.Advance(time.Millisecond)
			b := e.mustOK(Cost{Requests: 1}, 0)
			e.clk.Advance(10 * time.Millisecond)
			e.settle(b, reqs(4)) // between 4 - 1 (a not seen) and 4
		},
		want: 3,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setupLimiter(t, cfg)
			tt.run(e)
			approx(t, "requests available", e.snap().Requests.Available, tt.want)
		})
	}
}

func (e *limEnv) settle(r Reservation, info HeaderInfo) {
	e.t.Helper()
	if err := e.l.Settle(e.ctx, r, info, nil); err != nil {
		e.t.Fatalf("Settle: %v", err)
	}
}
