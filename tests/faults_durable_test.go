package tests

// Paid answers are never lost or bought twice (issue 16, items 1, 2, 8):
// Redis restarted or frozen while provider calls are in flight, with asserts
// on the provider's own count of calls per task.

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/promptq/promptq/internal/fakeopenai"
)

// outage stops Redis for d: frozen (SIGSTOP, connections hang) or, with
// restart, shut down (SIGTERM) and started again on the same port and files.
func (s *redisServer) outage(t *testing.T, d time.Duration, restart bool) {
	t.Helper()
	if restart {
		s.halt(t, syscall.SIGTERM)
	} else if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.cmd.Process.Signal(syscall.SIGCONT) })
	<-time.After(d) // the fault's length, not a wait for a condition
	if restart {
		s.start(t)
	} else if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

// requireBoughtOnce asserts that the provider answered every task exactly
// once: no task was sent twice, and no request failed.
func requireBoughtOnce(t *testing.T, fake *fakeopenai.Server, lines []taskLine) {
	t.Helper()
	st := fake.Stats()
	dup, most := callsPerTask(st, lines)
	t.Logf("provider: %d requests, %d answered, for %d tasks; %d tasks sent more than once (max %d)", st.Requests, st.OK, len(lines), dup, most)
	if dup != 0 || st.Requests != len(lines) || st.OK != len(lines) {
		t.Errorf("%d requests (%d answered) for %d tasks, %d tasks sent more than once: a paid answer was lost and bought again", st.Requests, st.OK, len(lines), dup)
	}
}

// TestFaultRedisRestartPaidAnswers (slow: ~30s): Redis (AOF on) is shut
// down for 5 s while 8 calls are in flight and started again. Every answer
// that arrives meanwhile is spooled and stored once Redis is back: the
// provider is called exactly once per task. Before issue 16 the handler
// gave up on the result after 0.6 s and asynq sent the prompt again (40
// tasks took 48 calls).
func TestFaultRedisRestartPaidAnswers(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: a Redis restart with calls in flight")
	}
	t.Parallel()
	const n = 40
	srv := startRedisServer(t, "--appendonly", "yes", "--appendfsync", "always")
	s := newSetupOn(t, srv.URL, fakeopenai.Config{Latency: 2 * time.Second, Jitter: 500 * time.Millisecond})
	workers := s.startWorkers(t, 2, 4)
	lines := batch(s.Queue, "paid", n)
	s.enqueue(t, lines)

	waitFor(t, 30*time.Second, "8 answers and 8 calls in flight", func() bool {
		st := s.Fake.Stats()
		return st.OK >= 8 && st.InFlight == 8
	}, nil)
	start := time.Now()
	srv.outage(t, 5*time.Second, true)
	t.Logf("Redis down for %s", since(start))
	s.requireNoLoss(t, lines, 3*time.Minute)
	t.Logf("batch completed %s after the restart began", since(start))
	requireBoughtOnce(t, s.Fake, lines)
	stopAll(t, workers)
}

// testFrozenLongCalls freezes Redis for 60 s while 45 s calls are in
// flight: longer than asynq's 30 s lease, so asynq cancels each task's
// context and later hands the task out again. The calls are not cut (they
// run on a context of their own), the answers are spooled and stored once
// Redis is back, and the redelivered tasks complete from the stored
// answers. extra are more worker flags.
func testFrozenLongCalls(t *testing.T, n, inFlight int, extra ...string) {
	srv := startRedisServer(t)
	s := newSetupOn(t, srv.URL, fakeopenai.Config{Latency: 45 * time.Second})
	workers := s.startWorkers(t, 2, 4, extra...)
	lines := batch(s.Queue, "long", n)
	s.enqueue(t, lines)
	waitFor(t, 30*time.Second, fmt.Sprintf("%d calls in flight", inFlight), func() bool { return s.Fake.Stats().InFlight == inFlight }, nil)
	<-time.After(2 * time.Second) // a little into the calls
	start := time.Now()
	srv.outage(t, 60*time.Second, false)
	st := s.Fake.Stats()
	t.Logf("Redis frozen for %s; provider: %d requests, %d answered, %d cut, %d in flight", since(start), st.Requests, st.OK, st.Canceled, st.InFlight)
	if st.Canceled != 0 {
		t.Errorf("%d calls were cut while Redis was frozen", st.Canceled)
	}
	s.requireNoLoss(t, lines, 4*time.Minute)
	t.Logf("batch completed %s after Redis was frozen", since(start))
	requireBoughtOnce(t, s.Fake, lines)
	stopAll(t, workers)
}

// TestFaultRedisFrozenLongCalls (slow: ~2.5 min): 8 calls of 45 s in flight
// (limits configured, so no cold-start probe) and Redis frozen for 60 s.
// Before issue 16: 16 calls for 8 tasks.
func TestFaultRedisFrozenLongCalls(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: a 60s Redis outage during 45s calls")
	}
	t.Parallel()
	testFrozenLongCalls(t, 8, 8, "--rpm", "100000")
}

// TestFaultRedisFrozenColdStart (slow: ~3 min): as above, but the outage
// hits the cold-start probe, the one request a fresh account sends before
// anything is learned. The probe's call finishes during the outage, its
// settle is retried once Redis is back, and the probe ends, so the other
// tasks go out. Before issue 16: the call was cut, its reservation stayed in
// flight for --reservation-ttl (10 min), and 0 of 8 tasks were answered in
// 300 s, with no log line.
func TestFaultRedisFrozenColdStart(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: a 60s Redis outage during the cold-start probe")
	}
	t.Parallel()
	testFrozenLongCalls(t, 4, 1)
}
