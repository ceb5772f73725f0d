package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/promptq/promptq/internal/fakeopenai"
)

// TestEndToEnd runs a batch through two worker processes: every task is
// answered exactly once, results are complete, a second enqueue of the same
// file adds nothing, and workers exit 0 on SIGTERM.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	s := newSetup(t, fakeopenai.Config{RPM: 100_000, Latency: 20 * time.Millisecond, Jitter: 10 * time.Millisecond})
	workers := s.startWorkers(t, 2, 8)

	lines := batch(s.Queue, "e2e", 50)
	path := s.enqueue(t, lines)
	s.waitCompleted(t, len(lines), 60*time.Second)

	requireAllCompleted(t, s.results(t), ids(lines))

	out, errOut, code := runCLI(t, "", "enqueue", "--redis", s.Redis, "--file", path)
	if want := "enqueued: 0, duplicates: 50, invalid: 0"; code != 0 || strings.TrimSpace(out) != want {
		t.Errorf("second enqueue: exit %d, stdout %q, want %q (stderr %q)", code, out, want, errOut)
	}

	st := s.Fake.Stats()
	for _, id := range ids(lines) {
		if st.ByTask[id] != 1 {
			t.Errorf("task %s: the provider saw %d requests, want 1", id, st.ByTask[id])
		}
	}
	if st.Requests != len(lines) || st.OK != len(lines) {
		t.Errorf("provider: %d requests, %d ok; want %d of each", st.Requests, st.OK, len(lines))
	}
	if q := s.queueStatus(t); q.Archived != 0 || q.Pending != 0 || q.Retry != 0 {
		t.Errorf("queue after the batch: %+v, want nothing archived, pending or retrying", q)
	}
	stopAll(t, workers)
}
