package tests

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/promptq/promptq/internal/fakeopenai"
)

// TestFaultProvider (slow: ~15s): the provider misbehaves for 5s at the
// start of a batch. Each kind of fault is retried with backoff until the
// provider is well again: every task completes exactly once, none is
// archived, and the fault hit at least one request.
func TestFaultProvider(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 5s provider faults")
	}
	t.Parallel()
	for _, tc := range []struct {
		name   string
		mode   fakeopenai.Mode
		cfg    fakeopenai.Config
		args   []string                   // extra worker flags
		stream bool                       // every task streams
		hits   func(fakeopenai.Stats) int // requests the fault hit
	}{
		{name: "connection resets", mode: fakeopenai.ModeReset,
			hits: func(s fakeopenai.Stats) int { return s.Resets }},
		// ModeSlow adds 30s; the worker gives up after --request-timeout 2s.
		{name: "slow beyond the request timeout", mode: fakeopenai.ModeSlow, args: []string{"--request-timeout", "2s"},
			hits: func(s fakeopenai.Stats) int { return s.Canceled }},
		{name: "truncated streams", mode: fakeopenai.ModeTruncate, stream: true,
			hits: func(s fakeopenai.Stats) int { return s.Truncated }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const n = 20
			cfg := tc.cfg
			cfg.Latency, cfg.Jitter = 100*time.Millisecond, 50*time.Millisecond
			s := newSetup(t, cfg)
			workers := s.startWorkers(t, 2, 4, tc.args...)
			lines := batch(s.Queue, "fault", n)
			for i := range lines {
				lines[i].Stream = lines[i].Stream || tc.stream
			}
			s.Fake.SetMode(tc.mode, 5*time.Second)
			start := time.Now()
			s.enqueue(t, lines)

			rs := s.requireNoLoss(t, lines, 90*time.Second)
			st := s.Fake.Stats()
			if tc.hits(st) == 0 {
				t.Fatalf("the fault hit no request; the test did not test anything: %s", jsonString(st))
			}
			maxAttempts := 0
			for _, r := range rs {
				maxAttempts = max(maxAttempts, r.Attempts)
			}
			t.Logf("%s: batch completed in %s; %d requests hit by the fault, %d requests in all, max attempts %d",
				tc.name, since(start), tc.hits(st), st.Requests, maxAttempts)
			stopAll(t, workers)
		})
	}
}

// TestFaultBadPayload: another producer puts prompt tasks with a payload
// promptq cannot read into the queue (a field of the wrong type, and not
// JSON at all). Each is archived on its first attempt with a readable
// reason ("malformed payload") in `promptq results`, the provider is never
// called for it, and the good tasks of the same queue complete.
func TestFaultBadPayload(t *testing.T) {
	t.Parallel()
	s := newSetup(t, fakeopenai.Config{})
	opt, err := asynq.ParseRedisURI(s.Redis)
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(opt)
	defer client.Close()
	bad := map[string]string{"bad-type": `{"model": 5}`, "bad-json": `not json`}
	for id, payload := range bad {
		task := asynq.NewTask("promptq:prompt", []byte(payload), asynq.Queue(s.Queue), asynq.TaskID(id), asynq.MaxRetry(10))
		if _, err := client.EnqueueContext(context.Background(), task); err != nil {
			t.Fatalf("enqueue %s: %v", id, err)
		}
	}
	lines := batch(s.Queue, "good", 10)
	s.enqueue(t, lines)
	workers := s.startWorkers(t, 1, 4)

	var last queueCounts
	waitFor(t, 30*time.Second, "2 archived and 10 completed tasks", func() bool {
		last = s.queueStatus(t)
		return last.Archived == len(bad) && last.Completed == len(lines)
	}, func() string { return "last status: " + jsonString(last) })

	var good []result
	for _, r := range s.results(t) {
		id := r.TaskID
		if _, ok := bad[id]; !ok {
			good = append(good, r)
			continue
		}
		if r.Status != "archived" || !strings.Contains(r.Error, "malformed payload") || r.Attempts != 1 {
			t.Errorf("result of %s (payload %q): %s, want archived after 1 attempt with an error naming \"malformed payload\"", id, bad[id], jsonString(r))
		}
		t.Logf("%s: %s", id, r.Error)
		delete(bad, id)
	}
	for id := range bad {
		t.Errorf("no result for the task %s", id)
	}
	requireAllCompleted(t, good, ids(lines))
	st := s.Fake.Stats()
	if st.ByTask["bad-type"] != 0 || st.ByTask["bad-json"] != 0 || st.Requests != len(lines) {
		t.Errorf("provider: %d requests (want %d), %d for bad-type and %d for bad-json (want 0)",
			st.Requests, len(lines), st.ByTask["bad-type"], st.ByTask["bad-json"])
	}
	stopAll(t, workers)
}
