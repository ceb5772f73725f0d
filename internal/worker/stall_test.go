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
