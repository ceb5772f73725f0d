package tests

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/promptq/promptq/internal/fakeopenai"
)

// TestFaultSharedQueuePause (issue 16, item 5): accounts A and B both
// consume one queue, each with its own provider. A runs out of quota
// (insufficient_quota, a pause of --pause-duration-hours); B must keep at
// least 90% of the throughput it had alone on the queue. Before the fix A's
// pause paused the asynq queue for both, and B completed next to nothing.
// Now the queue stays running while B is active, A's pause record alone
// holds A's workers (a task A dequeues waits up to SharedPauseHold, then
// goes back to the queue for B), and status says so.
func TestFaultSharedQueuePause(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: two throughput runs")
	}
	const conc, n, measured = 4, 100, 80
	fake := fakeopenai.Config{Latency: 200 * time.Millisecond, Jitter: 20 * time.Millisecond}
	a := newSetup(t, fake)
	b := newSetup(t, fake)
	b.Queue = a.Queue // one queue, two accounts

	// B's rate: B's provider's answers per second between its 10th and
	// its (10+measured)th answer after a batch of n is enqueued (from the
	// 10th, so that an idle asynq server's poll interval does not count).
	rate := func(prefix string) float64 {
		start := b.Fake.Stats().OK
		b.enqueue(t, batch(a.Queue, prefix, n))
		var t0 time.Time
		waitFor(t, 60*time.Second, fmt.Sprintf("%d answers from B's provider", 10+measured), func() bool {
			got := b.Fake.Stats().OK - start
			if t0.IsZero() && got >= 10 {
				t0 = time.Now()
			}
			return got >= 10+measured
		}, nil)
		return measured / time.Since(t0).Seconds()
	}

	bw := startWorker(t, nil, b.workerArgs(conc)...)
	bw.waitStarted(t)
	rate("warm") // the cold-start probe and calibration settle
	b.waitCompleted(t, n, 60*time.Second)
	solo := rate("solo")
	b.waitCompleted(t, 2*n, 60*time.Second)

	// A joins; its provider says insufficient_quota from the first request.
	a.Fake.SetMode(fakeopenai.ModeInsufficientQuota, 0)
	aw := startWorker(t, nil, a.workerArgs(conc, "--pause-duration-hours", "0.05")...)
	aw.waitStarted(t)
	// Enough for B to be busy over a second: an idle asynq server (A's)
	// polls an empty queue once a second.
	a.enqueue(t, batch(a.Queue, "bait", 40))
	var st pauseInfo
	waitFor(t, 30*time.Second, "account A paused", func() bool {
		st = getStatus(t, a.Redis, a.Account).Accounts[a.Account]
		return st.Paused
	}, nil)
	if q := a.queueStatus(t); q.Paused {
		t.Errorf("A's pause paused the queue B consumes too")
	}
	out, _, code := runCLI(t, "", "status", "--redis", a.Redis, "--account", a.Account)
	if code != 0 || !strings.Contains(out, "the pause record alone holds this account's workers") {
		t.Errorf("status does not say the record alone holds A's workers on the shared queue:\n%s", out)
	}
	raw := getStatusRaw(t, a.Redis, a.Account)
	if !slices.Contains(raw.Accounts[a.Account].SharedQueues, a.Queue) {
		t.Errorf("status --json: account A shared_queues %v, want [%s]", raw.Accounts[a.Account].SharedQueues, a.Queue)
	}

	waitFor(t, 30*time.Second, "the bait to leave the pending list", func() bool { return a.queueStatus(t).Pending == 0 }, nil)
	shared := rate("shared")
	t.Logf("B alone: %.1f tasks/s; B while A is paused on the same queue: %.1f tasks/s (%.0f%%); A's provider saw %d requests",
		solo, shared, 100*shared/solo, a.Fake.Stats().Requests)
	if shared < 0.9*solo {
		t.Errorf("B kept %.0f%% of its solo throughput while A was paused, want >= 90%%", 100*shared/solo)
	}
	stopAll(t, []*proc{aw, bw})
}

// sharedStatus is the part of `promptq status --json` this file reads.
type sharedStatus struct {
	Accounts map[string]struct {
		SharedQueues []string `json:"shared_queues"`
	} `json:"accounts"`
}

func getStatusRaw(t *testing.T, redisURL, account string) sharedStatus {
	t.Helper()
	out, errOut, code := runCLI(t, "", "status", "--redis", redisURL, "--json", "--account", account)
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, errOut)
	}
	var rep sharedStatus
	if err := jsonUnmarshal(out, &rep); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return rep
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
