package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/promptq/promptq/internal/fakeopenai"
)

// TestInvalidArchivedOnce: a request the provider rejects as invalid (404
// model_not_found) is archived after exactly one call, and its result
// carries the provider's message and error_kind "invalid".
func TestInvalidArchivedOnce(t *testing.T) {
	t.Parallel()
	s := newSetup(t, fakeopenai.Config{})
	workers := s.startWorkers(t, 1, 2)
	s.enqueue(t, []taskLine{
		{ID: "bad", Model: "bad-model", Input: "hello", Queue: s.Queue},
		{ID: "good", Model: "gpt-4o-mini", Input: "hello", Queue: s.Queue},
	})

	var last queueCounts
	waitFor(t, 30*time.Second, "1 archived and 1 completed task", func() bool {
		last = s.queueStatus(t)
		return last.Archived == 1 && last.Completed == 1
	}, func() string { return "last status: " + jsonString(last) })

	rs := s.results(t)
	var bad *result
	for i := range rs {
		if rs[i].ID == "bad" {
			bad = &rs[i]
		}
	}
	switch {
	case bad == nil:
		t.Fatalf("no result for the invalid task in %s", jsonString(rs))
	case bad.Status != "archived":
		t.Errorf("status %q, want archived", bad.Status)
	case bad.ErrorKind != "invalid":
		t.Errorf("error_kind %q, want invalid", bad.ErrorKind)
	case !strings.Contains(bad.Error, "The model `bad-model` does not exist"):
		t.Errorf("error %q does not carry the provider's message", bad.Error)
	case bad.Attempts != 1:
		t.Errorf("attempts %d, want 1", bad.Attempts)
	}
	if n := s.Fake.Stats().ByTask["bad"]; n != 1 {
		t.Errorf("the provider saw %d requests for the invalid task, want exactly 1", n)
	}
	if st := s.status(t); st.Accounts[s.Account].Paused {
		t.Errorf("an invalid request paused the account: %s", jsonString(st.Accounts[s.Account]))
	}
	stopAll(t, workers)
}

// TestServerOutage (slow: ~15s): the provider answers 500 for 10s while a
// batch runs; tasks back off and retry, every task completes, none is
// archived, and the tasks that were hit report more than one attempt.
func TestServerOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: a 10s outage")
	}
	t.Parallel()
	s := newSetup(t, fakeopenai.Config{Latency: 50 * time.Millisecond})
	workers := s.startWorkers(t, 2, 4)
	s.Fake.SetMode(fakeopenai.ModeServerError, 10*time.Second)
	lines := batch(s.Queue, "outage", 20)
	s.enqueue(t, lines)

	// Backoff for server errors is 1s, 2s, 4s, 8s... (cap 30s): a task first
	// hit at the start of the outage is retried at about 1, 3, 7 and 15s.
	s.waitCompleted(t, len(lines), 90*time.Second)
	rs := s.results(t)
	requireAllCompleted(t, rs, ids(lines))

	st := s.Fake.Stats()
	if st.ServerErrors == 0 {
		t.Fatal("the outage hit no request; the test did not test anything")
	}
	hit := 0
	for _, r := range rs {
		calls := st.ByTask[r.ID]
		if calls > 1 {
			hit++
			if r.Attempts < 2 {
				t.Errorf("task %s: the provider saw %d calls but attempts is %d", r.ID, calls, r.Attempts)
			}
		}
		if r.Attempts > calls {
			t.Errorf("task %s: attempts %d but only %d calls reached the provider", r.ID, r.Attempts, calls)
		}
	}
	if q := s.queueStatus(t); q.Archived != 0 {
		t.Errorf("%d tasks archived after a transient outage", q.Archived)
	}
	t.Logf("outage: %d server errors, %d tasks hit, %d requests in all", st.ServerErrors, hit, st.Requests)
	stopAll(t, workers)
}
