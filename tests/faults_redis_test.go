package tests

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/promptq/promptq/internal/fakeopenai"
)

// TestFaultRedisRestartAOF (slow: ~20s): Redis with the append-only file on
// is stopped (SIGTERM) and started again on the same port twice, once
// while tasks are running and once while the account is paused. The
// workers are not restarted: they reconnect by themselves, and the batch
// completes with every result exactly once. The pause record (`promptq
// pause --for 1h`) and the daily counters (`--daily-request-limit`) are
// still there after the restart.
func TestFaultRedisRestartAOF(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: two Redis restarts")
	}
	t.Parallel()
	const n = 40
	srv := startRedisServer(t, "--appendonly", "yes", "--appendfsync", "everysec")
	s := newSetupOn(t, srv.URL, fakeopenai.Config{Latency: 300 * time.Millisecond, Jitter: 100 * time.Millisecond})
	workers := s.startWorkers(t, 2, 4, "--daily-request-limit", "1000000")
	lines := batch(s.Queue, "aof", n)
	s.enqueue(t, lines)

	// Restart 1: mid-batch, with tasks active.
	waitFor(t, 30*time.Second, "8 answers before the first restart", func() bool { return s.Fake.Stats().OK >= 8 }, nil)
	start := time.Now()
	srv.halt(t, syscall.SIGTERM)
	atStop := s.Fake.Stats()
	srv.start(t)
	t.Logf("restart 1: Redis down for %s with %d of %d answered", since(start), atStop.OK, n)
	if atStop.OK >= n {
		t.Fatal("the batch finished before the restart; the test did not test anything")
	}
	waitFor(t, 30*time.Second, "an answer after the restart (the workers reconnected)", func() bool {
		return s.Fake.Stats().OK > atStop.OK+2
	}, nil)

	// Restart 2: with the account paused for an hour.
	if out, errOut, code := runCLI(t, "", "pause", "--redis", s.Redis, "--account", s.Account, "--for", "1h", "--reason", "before restart"); code != 0 {
		t.Fatalf("pause: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	waitFor(t, 15*time.Second, "in-flight requests to drain", func() bool { return s.Fake.Stats().InFlight == 0 }, nil)
	before := s.quota(t)
	if before.Daily.Requests <= 0 {
		t.Fatalf("daily requests %d before the restart, want > 0 (the counter is not kept?)", before.Daily.Requests)
	}
	srv.halt(t, syscall.SIGTERM)
	srv.start(t)

	st := s.status(t)
	acct := st.Accounts[s.Account]
	if !acct.Paused || acct.Kind != "manual" || acct.Reason != "before restart" || acct.Until == nil {
		t.Errorf("pause after the restart: %s, want the manual 1h pause with reason \"before restart\"", jsonString(acct))
	} else if until, err := time.Parse(time.RFC3339, *acct.Until); err != nil || time.Until(until) < 55*time.Minute {
		t.Errorf("pause after the restart ends at %q, want about an hour from now", *acct.Until)
	}
	after := s.quota(t)
	if after.Daily.Requests < before.Daily.Requests {
		t.Errorf("daily requests %d after the restart, %d before: the counters were lost", after.Daily.Requests, before.Daily.Requests)
	}
	t.Logf("daily requests before/after restart 2: %d/%d", before.Daily.Requests, after.Daily.Requests)

	if out, errOut, code := runCLI(t, "", "resume", "--redis", s.Redis, "--account", s.Account); code != 0 {
		t.Fatalf("resume: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	s.requireNoLoss(t, lines, 90*time.Second)
	fst := s.Fake.Stats()
	dup, most := callsPerTask(fst, lines)
	t.Logf("batch completed %s after restart 1; %d requests for %d tasks, %d sent more than once (max %d)", since(start), fst.Requests, n, dup, most)
	for _, w := range workers {
		if strings.Count(w.Logs(), `"worker started"`) != 1 {
			t.Errorf("%s started more than once", w.name)
		}
	}
	stopAll(t, workers)
}

// TestFaultRedisRestartNoPersistence documents what promptq does not
// protect against. asynq keeps every task (pending, active, scheduled,
// retry, completed) only in Redis, and its README says so: Redis is the
// queue's storage, and durability is Redis's persistence (AOF or RDB). A
// Redis started with `--appendonly no --save ""` and restarted comes back
// empty: the queue, the results, the pause records and the quota counters
// are gone. The test asserts that total loss, so that a change in the
// deployment advice (deploy/ runs Redis with AOF on) is a conscious one.
func TestFaultRedisRestartNoPersistence(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t, "--appendonly", "no", "--save", "")
	s := newSetupOn(t, srv.URL, fakeopenai.Config{})
	lines := batch(s.Queue, "volatile", 10)
	s.enqueue(t, lines)
	if out, errOut, code := runCLI(t, "", "pause", "--redis", s.Redis, "--account", s.Account, "--for", "1h"); code != 0 {
		t.Fatalf("pause: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if q := s.queueStatus(t); q.Pending != len(lines) {
		t.Fatalf("before the restart: %s, want %d pending", jsonString(q), len(lines))
	}

	srv.halt(t, syscall.SIGTERM)
	srv.start(t)

	st := s.status(t)
	if q, ok := st.Queues[s.Queue]; ok && (q.Pending != 0 || q.Completed != 0) {
		t.Errorf("after a restart without persistence the queue holds %s; the test's premise (total loss) no longer holds", jsonString(q))
	}
	if st.Accounts[s.Account].Paused {
		t.Errorf("the pause survived a restart without persistence: %s", jsonString(st.Accounts[s.Account]))
	}
	if n, err := srv.client(t).DBSize(t.Context()).Result(); err != nil || n != 0 {
		t.Errorf("DBSIZE after the restart: %d, %v; want an empty Redis", n, err)
	}
}

// TestFaultRedisUnreachable (slow: ~20s): Redis is frozen with SIGSTOP for
// 10s mid-batch (connections hang rather than being refused, the harder
// case) and then continued. Workers do not exit, send the provider nothing
// new while Redis is gone (only requests already admitted may complete),
// and finish the batch once Redis is back. The number of log lines each
// worker writes during the outage is reported and bounded.
func TestFaultRedisUnreachable(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: a 10s Redis outage")
	}
	t.Parallel()
	const n = 60
	srv := startRedisServer(t)
	s := newSetupOn(t, srv.URL, fakeopenai.Config{Latency: 500 * time.Millisecond, Jitter: 100 * time.Millisecond})
	workers := s.startWorkers(t, 2, 4)
	lines := batch(s.Queue, "frozen", n)
	s.enqueue(t, lines)
	waitFor(t, 30*time.Second, "8 answers before the outage", func() bool { return s.Fake.Stats().OK >= 8 }, nil)

	marks := make([]logMark, len(workers))
	for i, w := range workers {
		marks[i] = markLogs(w)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	t.Cleanup(func() { _ = srv.cmd.Process.Signal(syscall.SIGCONT) })
	atStop := s.Fake.Stats()
	if atStop.OK >= n {
		t.Fatal("the batch finished before the outage; the test did not test anything")
	}
	// A request admitted just before SIGSTOP may still be on its way to the
	// provider; after a second every such request has arrived.
	var settled fakeopenai.Stats
	waitFor(t, 3*time.Second, "1s into the outage", func() bool { return time.Since(stopped) >= time.Second }, nil)
	settled = s.Fake.Stats()
	waitFor(t, 12*time.Second, "10s of outage", func() bool {
		if got := s.Fake.Stats().Requests; got != settled.Requests {
			t.Errorf("the provider got %d new requests while Redis was unreachable", got-settled.Requests)
			return true
		}
		return time.Since(stopped) >= 10*time.Second
	}, nil)
	for _, w := range workers {
		select {
		case <-w.done:
			t.Fatalf("%s exited while Redis was unreachable: %v\n%s", w.name, w.err, tail(w.Logs(), 30))
		default:
		}
	}
	if err := srv.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	t.Logf("outage: %d requests at SIGSTOP (%d in flight), %d within the first second, none after", atStop.Requests, atStop.InFlight, settled.Requests-atStop.Requests)
	if extra := settled.Requests - atStop.Requests; extra > 8 {
		t.Errorf("%d requests reached the provider in the first second of the outage, more than the 8 worker slots", extra)
	}

	for i, m := range marks {
		got := m.since()
		t.Logf("%s logged %d lines during the 10s outage; first: %s", workers[i].name, len(got), first(got))
		if len(got) >= 200 {
			t.Errorf("%s logged %d lines during a 10s Redis outage (a flood); last:\n%s", workers[i].name, len(got), strings.Join(got[len(got)-10:], "\n"))
		}
	}
	s.requireNoLoss(t, lines, 90*time.Second)
	st := s.Fake.Stats()
	dup, most := callsPerTask(st, lines)
	t.Logf("batch completed %s after SIGCONT; %d tasks sent more than once (max %d)", since(resumed), dup, most)
	stopAll(t, workers)
}

func first(lines []string) string {
	if len(lines) == 0 {
		return "(none)"
	}
	return lines[0]
}
