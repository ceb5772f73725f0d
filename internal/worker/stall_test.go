package worker

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestStallWatch: admissions held past StallAfter are logged once, and
// their end once; a hold shorter than that, or one broken by an
// admission, says nothing.
func TestStallWatch(t *testing.T) {
	var buf bytes.Buffer
	log := zerolog.New(&buf)
	var s stallWatch
	t0 := time.Unix(1000, 0)
	s.held(t0, log, "probe")
	s.held(t0.Add(StallAfter-time.Millisecond), log, "probe")
	s.admitted(t0.Add(StallAfter), log)
	s.held(t0.Add(2*StallAfter), log, "probe")
	if buf.Len() != 0 {
		t.Fatalf("logged %q for holds shorter than %v", buf.String(), StallAfter)
	}
	for i := range 5 {
		s.held(t0.Add(3*StallAfter+time.Duration(i)*time.Second), log, "probe")
	}
	if n := strings.Count(buf.String(), "admissions held"); n != 1 {
		t.Fatalf("logged %d stall warnings, want 1: %s", n, buf.String())
	}
	s.admitted(t0.Add(4*StallAfter), log)
	if !strings.Contains(buf.String(), "admissions resumed") || !strings.Contains(buf.String(), `"held_ms":10000`) {
		t.Fatalf("no resume line with the stall's length: %s", buf.String())
	}
}

// TestComeBackIn: a task handed back for a turn wait away returns when the
// turn is within the scheduling window (MaxInlineWait), at least 1 s later.
func TestComeBackIn(t *testing.T) {
	h := NewHandler(HandlerConfig{Account: "a", MaxInlineWait: 2 * time.Second}, nil, nil, nil)
	for _, c := range []struct{ wait, want time.Duration }{
		{2500 * time.Millisecond, time.Second},
		{5 * time.Second, 3 * time.Second},
		{time.Minute, 58 * time.Second},
	} {
		if got := h.comeBackIn(c.wait); got != c.want {
			t.Errorf("comeBackIn(%v) = %v, want %v", c.wait, got, c.want)
		}
	}
}
