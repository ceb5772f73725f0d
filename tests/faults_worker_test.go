package tests

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/promptq/promptq/internal/fakeopenai"
	"github.com/promptq/promptq/internal/keys"
)

// TestFaultWorkerKilled (slow: ~65s): one of three workers is killed with
// SIGKILL mid-batch while tasks are active. Its tasks stay active until
// asynq gives them up: their lease (30s, rdb.LeaseDuration, extended every
// 5s by the heartbeat) must have expired 30s ago (recoverer.go allows for
// clock skew), and a recoverer must then run. Recoverers run when a worker
// starts and then once a minute (hard-coded in asynq v0.26 server.go), so
// the survivors alone recover the tasks 60-120s after the kill (measured:
// 1m59.8s). The test does what an orchestrator does, and starts a
// replacement worker once the dead leases are recoverable: about 60s after
// the kill. Every task completes, each result is present exactly once,
// nothing is archived. The provider runs at its limit (600 RPM held as a
// one-second bucket) so the dead worker's unsettled quota reservations
// would show up as a stall if they blocked the account.
func TestFaultWorkerKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: waits out asynq's lease recovery (~60s)")
	}
	t.Parallel()
	const n = 36
	s := newSetup(t, fakeopenai.Config{RPM: 600, Burst: time.Second, Latency: time.Second, Jitter: 200 * time.Millisecond})
	workers := s.startWorkers(t, 3, 4)
	lines := batch(s.Queue, "killed", n)
	s.enqueue(t, lines)

	waitFor(t, 30*time.Second, "8 answers before the kill", func() bool { return s.Fake.Stats().OK >= 8 }, nil)
	victim := workers[1]
	activeBefore := s.queueStatus(t).Active
	victim.Kill()
	killed := time.Now()
	atKill := s.Fake.Stats()
	q := s.quota(t)
	t.Logf("killed %s with %d of %d answered, %d active in the queue, quota in_flight %d", victim.name, atKill.OK, n, activeBefore, q.InFlight)
	if atKill.OK >= n {
		t.Fatal("the batch finished before the kill; the test did not test anything")
	}

	// The dead worker's leases are the ones nobody extends (the survivors'
	// always end 25s or more ahead): wait until every expired lease expired
	// more than 30s ago (what the recoverer looks for), then start the
	// replacement, whose recoverer runs at once.
	rc := redisClient(t, s.Redis)
	lease := keys.AsynqLease(s.Queue)
	dead := 0
	waitFor(t, 90*time.Second, "every dead lease to have expired 30s ago", func() bool {
		now := time.Now()
		cutoff := strconv.FormatInt(now.Add(-30*time.Second).Unix(), 10)
		old, err1 := rc.ZCount(context.Background(), lease, "-inf", cutoff).Result()
		recent, err2 := rc.ZCount(context.Background(), lease, "("+cutoff, strconv.FormatInt(now.Unix(), 10)).Result()
		dead = int(old)
		return err1 == nil && err2 == nil && old > 0 && recent == 0
	}, nil)
	t.Logf("%d dead leases recoverable %s after the kill; starting a replacement", dead, since(killed))
	workers = append(workers, s.startWorkers(t, 1, 4)...)

	rs := s.requireNoLoss(t, lines, 60*time.Second)
	st := s.Fake.Stats()
	dup, most := callsPerTask(st, lines)
	after := s.quota(t)
	t.Logf("batch completed %s after the kill; provider: %d requests, %d ok, %d rate-limited, %d tasks sent more than once (max %d); quota in_flight after the batch %d",
		since(killed), st.Requests, st.OK, st.RateLimited, dup, most, after.InFlight)
	retried := 0
	for _, r := range rs {
		if r.Attempts > 1 {
			retried++
		}
	}
	t.Logf("%d results report more than one attempt", retried)
	if retried < dead {
		t.Errorf("%d results report a second attempt, fewer than the %d tasks recovered from the dead worker", retried, dead)
	}
	// The dead worker's reservations are never settled; they stay counted in
	// in_flight until the limiter's ReservationTTL (10m, not a worker flag)
	// drops them. What matters is that they did not block the batch, which
	// completed above at the provider's limit.
	if after.InFlight > 4 {
		t.Errorf("quota in_flight %d after the batch, more than the dead worker's 4 slots could hold", after.InFlight)
	}
	stopAll(t, []*proc{workers[0], workers[2], workers[3]})
}

// TestFaultGracefulShutdown: SIGTERM to a worker that has requests in
// flight mid-batch. It lets them finish (the provider sees each one
// answered, none canceled), exits 0, and a second worker takes the rest:
// every task completes exactly once, and no task was sent to the provider
// twice (nothing in flight was abandoned and redone). The second worker is
// started once the first has exited, so that the provider's counters at
// the exit belong to the first alone.
func TestFaultGracefulShutdown(t *testing.T) {
	t.Parallel()
	const n = 24
	s := newSetup(t, fakeopenai.Config{Latency: 1500 * time.Millisecond, Jitter: 200 * time.Millisecond})
	first := s.startWorkers(t, 1, 4)[0]
	lines := batch(s.Queue, "sigterm", n)
	s.enqueue(t, lines)

	waitFor(t, 30*time.Second, "4 answers and 4 requests in flight", func() bool {
		st := s.Fake.Stats()
		return st.OK >= 4 && st.InFlight == 4
	}, nil)
	before := s.Fake.Stats()
	start := time.Now()
	first.Stop(t) // asserts exit 0
	after := s.Fake.Stats()
	t.Logf("%s exited %s after SIGTERM; at SIGTERM %d requests in flight, %d answered; at exit %d in flight, %d answered, %d canceled",
		first.name, since(start), before.InFlight, before.OK, after.InFlight, after.OK, after.Canceled)
	if !strings.Contains(first.Logs(), `"worker stopped"`) {
		t.Errorf("%s did not log \"worker stopped\"", first.name)
	}
	if after.InFlight != 0 || after.Canceled != 0 || after.OK < before.OK+before.InFlight {
		t.Errorf("SIGTERM did not let in-flight requests finish: at SIGTERM %d in flight and %d answered, at exit %d in flight, %d answered, %d canceled",
			before.InFlight, before.OK, after.InFlight, after.OK, after.Canceled)
	}
	if after.OK >= n {
		t.Fatal("the batch finished before SIGTERM; the test did not test anything")
	}

	second := s.startWorkers(t, 1, 4)
	s.requireNoLoss(t, lines, 60*time.Second)
	st := s.Fake.Stats()
	if dup, most := callsPerTask(st, lines); dup != 0 {
		t.Errorf("%d tasks were sent to the provider more than once (max %d): a graceful stop abandoned in-flight work", dup, most)
	}
	stopAll(t, second)
}
