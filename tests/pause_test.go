package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/promptq/promptq/internal/fakeopenai"
)

// TestQuotaPausePropagation (slow: ~15s) is the pause-gate
// scenario: the provider runs out of quota mid-batch (429
// insufficient_quota for 5s). The first such answer pauses the account for
// every worker process at once: the provider sees no more requests than
// were already on their way, status shows the pause with kind "quota", and
// after the operator tops up billing and runs `promptq resume` the batch
// completes with every result exactly once and nothing archived.
//
// The pause lasts --pause-duration-hours (minimum 1 minute) because the
// provider gives no resume time for insufficient_quota; the test ends it
// early with `promptq resume`, as an operator would.
func TestQuotaPausePropagation(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: waits out a one-minute quota pause")
	}
	t.Parallel()
	const n = 90
	s := newSetup(t, fakeopenai.Config{Latency: 300 * time.Millisecond, Jitter: 100 * time.Millisecond})
	workers := s.startWorkers(t, 3, 4, "--pause-duration-hours", "0.0167")
	lines := batch(s.Queue, "qpause", n)
	s.enqueue(t, lines)

	waitFor(t, 30*time.Second, "20 answers before the quota runs out", func() bool { return s.Fake.Stats().OK >= 20 }, nil)
	s.Fake.SetMode(fakeopenai.ModeInsufficientQuota, 5*time.Second)
	waitFor(t, 10*time.Second, "the first insufficient_quota answer", func() bool { return s.Fake.Stats().QuotaErrors > 0 }, nil)

	var acct pauseInfo
	waitFor(t, 10*time.Second, "status to show the account paused", func() bool {
		acct = s.status(t).Accounts[s.Account]
		return acct.Paused
	}, nil)
	if acct.Kind != "quota" || acct.Until == nil || !strings.Contains(acct.Reason, "quota") {
		t.Errorf("pause while out of quota: %s, want kind quota with an end time and the provider's reason", jsonString(acct))
	}

	// Operator tops up billing: the provider is back to normal, then resume.
	waitFor(t, 10*time.Second, "the provider's quota mode to end", func() bool { return s.Fake.Mode() == fakeopenai.ModeNormal }, nil)
	st := s.Fake.Stats()
	t.Logf("quota errors %d; in flight at the first %d; requests after it while out of quota %d",
		st.QuotaErrors, st.InFlightAtFirstQuotaError, st.RequestsAfterFirstQuotaError)
	if st.RequestsAfterFirstQuotaError > st.InFlightAtFirstQuotaError {
		t.Errorf("%d requests reached the provider after the first insufficient_quota answer, more than the %d already in flight then",
			st.RequestsAfterFirstQuotaError, st.InFlightAtFirstQuotaError)
	}
	if st.OK >= n {
		t.Fatal("the batch finished before the quota ran out; the test did not test anything")
	}
	if out, errOut, code := runCLI(t, "", "resume", "--redis", s.Redis, "--account", s.Account); code != 0 || !strings.Contains(out, s.Account) {
		t.Fatalf("resume: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	resumed := time.Now()
	if acct := s.status(t).Accounts[s.Account]; acct.Paused {
		t.Errorf("status after resume: %s, want not paused", jsonString(acct))
	}
	// Resume also releases the tasks the pause parked in asynq's retry set
	// (with a delay up to the pause's end), so the batch finishes now rather
	// than when the pause would have ended.
	s.waitCompleted(t, n, 60*time.Second)
	t.Logf("batch completed %v after resume", time.Since(resumed).Round(100*time.Millisecond))
	requireAllCompleted(t, s.results(t), ids(lines))
	if q := s.queueStatus(t); q.Archived != 0 {
		t.Errorf("%d tasks archived", q.Archived)
	}
	stopAll(t, workers)
}

// TestManualPause: `promptq pause` stops every worker from sending new
// requests (the in-flight ones finish), and `promptq resume` lets the batch
// complete.
func TestManualPause(t *testing.T) {
	t.Parallel()
	const n = 60
	s := newSetup(t, fakeopenai.Config{Latency: 200 * time.Millisecond, Jitter: 50 * time.Millisecond})
	workers := s.startWorkers(t, 2, 4)
	lines := batch(s.Queue, "mpause", n)
	s.enqueue(t, lines)
	waitFor(t, 30*time.Second, "10 answers before the pause", func() bool { return s.Fake.Stats().OK >= 10 }, nil)

	out, errOut, code := runCLI(t, "", "pause", "--redis", s.Redis, "--account", s.Account, "--reason", "test pause")
	if code != 0 || !strings.Contains(out, "paused "+s.Account) {
		t.Fatalf("pause: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if acct := s.status(t).Accounts[s.Account]; !acct.Paused || acct.Kind != "manual" || acct.Reason != "test pause" || acct.Until != nil {
		t.Errorf("status after pause: %s, want paused until resumed, kind manual, reason \"test pause\"", jsonString(acct))
	}
	waitFor(t, 10*time.Second, "in-flight requests to drain", func() bool { return s.Fake.Stats().InFlight == 0 }, nil)
	before := s.Fake.Stats()
	if before.OK >= n {
		t.Fatal("the batch finished before the pause; the test did not test anything")
	}
	// For 3 seconds the provider must see no new request.
	quiet := time.Now().Add(3 * time.Second)
	waitFor(t, 5*time.Second, "3 quiet seconds", func() bool {
		if got := s.Fake.Stats().Requests; got != before.Requests {
			t.Fatalf("the provider got %d requests while the account was paused", got-before.Requests)
		}
		return time.Now().After(quiet)
	}, nil)

	if out, errOut, code := runCLI(t, "", "resume", "--redis", s.Redis, "--account", s.Account); code != 0 || !strings.Contains(out, s.Account) {
		t.Fatalf("resume: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	resumed := time.Now()
	s.waitCompleted(t, n, 60*time.Second)
	t.Logf("paused with %d of %d answered; batch completed %v after resume", before.OK, n, time.Since(resumed).Round(100*time.Millisecond))
	requireAllCompleted(t, s.results(t), ids(lines))
	stopAll(t, workers)
}
