package fakeopenai

import (
	"testing"
	"time"
)

func TestBucket(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		limit    int
		burst    time.Duration
		minCap   float64
		take     float64       // debited at t0
		after    time.Duration // then refilled until t0+after
		want     bucketState
		waitFor  float64
		wantWait time.Duration
	}{
		{"full", 60, time.Minute, 1, 0, 0, bucketState{60, 60, 0}, 1, 0},
		{"one taken", 60, time.Minute, 1, 1, 0, bucketState{60, 59, time.Second}, 1, 0},
		{"refills continuously", 60, time.Minute, 1, 10, 2500 * time.Millisecond, bucketState{60, 52, 7500 * time.Millisecond}, 1, 0},
		{"never above capacity", 60, time.Minute, 1, 10, time.Hour, bucketState{60, 60, 0}, 1, 0},
		{"per-second burst", 600, time.Second, 1, 10, 0, bucketState{600, 0, time.Second}, 1, 100 * time.Millisecond},
		{"min capacity of one request", 10, time.Second, 1, 1, 0, bucketState{10, 0, 6 * time.Second}, 1, 6 * time.Second},
		{"token cost above capacity", 6000, time.Second, 0, 0, 0, bucketState{6000, 100, 0}, 150, 500 * time.Millisecond},
		{"rounded up to ms", 7, time.Minute, 0, 7, 0, bucketState{7, 0, time.Minute}, 1, 8572 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBucket(tc.limit, tc.burst, tc.minCap)
			b.refill(t0)
			b.level -= tc.take
			b.refill(t0.Add(tc.after))
			if got := b.snapshot(); got != tc.want {
				t.Errorf("snapshot = %+v, want %+v", got, tc.want)
			}
			if got := b.wait(tc.waitFor); got != tc.wantWait {
				t.Errorf("wait(%v) = %s, want %s", tc.waitFor, got, tc.wantWait)
			}
		})
	}
	if newBucket(0, time.Minute, 1) != nil {
		t.Error("limit 0 must mean no bucket")
	}
}

func TestFormatting(t *testing.T) {
	for _, tc := range []struct {
		d         time.Duration
		reset, ra string
	}{
		{0, "0s", "0"},
		{20 * time.Millisecond, "20ms", "1"},
		{1500 * time.Millisecond, "1.5s", "2"},
		{6 * time.Minute, "6m0s", "360"},
	} {
		if got := formatReset(tc.d); got != tc.reset {
			t.Errorf("formatReset(%s) = %q, want %q", tc.d, got, tc.reset)
		}
		if got := retryAfterSeconds(tc.d); got != tc.ra {
			t.Errorf("retryAfterSeconds(%s) = %q, want %q", tc.d, got, tc.ra)
		}
	}
}

func TestOutputText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"hi", 4, "echo: hi lorem ipsum"},
		{"hi", 1, "echo: hi"},
		{"", 3, "echo: lorem ipsum"},
		{"0123456789012345678901234567890123456789XYZ", 2, "echo: 0123456789012345678901234567890123456789"},
	} {
		if got := OutputText(tc.in, tc.n); got != tc.want {
			t.Errorf("OutputText(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
