package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/promptq/promptq/internal/fakeopenai"
)

// TestFaultSkewedWorkerClock (~20s): one worker's clock runs 15 minutes
// ahead, another's 15 minutes behind, a third is right (--clock-skew). Every
// script takes its time from Redis, so nothing changes: an admin pause of 10
// minutes survives the fast worker's gate ticks, and all three workers keep
// being admitted under a shared RPM limit. Before issue 16 the fast worker's
// gate ended the pause at once, and its timestamps stalled the others'
// admissions for 15 minutes.
func TestFaultSkewedWorkerClock(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: three workers under a shared limit")
	}
	t.Parallel()
	s := newSetup(t, fakeopenai.Config{RPM: 1200, Latency: 100 * time.Millisecond})
	if out, errOut, code := runCLI(t, "", "pause", "--redis", s.Redis, "--account", s.Account, "--for", "10m", "--reason", "admin"); code != 0 {
		t.Fatalf("pause: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	lines := batch(s.Queue, "skew", 150)
	s.enqueue(t, lines)
	var ws []*proc
	for _, skew := range []string{"0s", "15m", "-15m"} {
		ws = append(ws, startWorker(t, nil, s.workerArgs(4, "--clock-skew", skew, "--log-level", "debug")...))
	}
	for _, w := range ws {
		w.waitStarted(t)
	}
	// The gates tick every second; give the fast one a few ticks.
	<-time.After(4 * time.Second)
	if acct := s.status(t).Accounts[s.Account]; !acct.Paused || acct.Reason != "admin" {
		t.Fatalf("after 4s with a worker 15 minutes ahead: %s, want the 10-minute admin pause", jsonString(acct))
	}
	if st := s.Fake.Stats(); st.Requests != 0 {
		t.Fatalf("%d requests reached the provider during the admin pause", st.Requests)
	}
	if out, errOut, code := runCLI(t, "", "resume", "--redis", s.Redis, "--account", s.Account); code != 0 {
		t.Fatalf("resume: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	s.requireNoLoss(t, lines, 2*time.Minute)
	st := s.Fake.Stats()
	t.Logf("provider: %d requests, %d answered, %d rate limited", st.Requests, st.OK, st.RateLimited)
	for i, w := range ws {
		n := strings.Count(w.Logs(), `"task completed"`)
		t.Logf("worker %d (%s) completed %d tasks", i, []string{"right", "+15m", "-15m"}[i], n)
		if n == 0 {
			t.Errorf("worker %d completed no task: its admissions stalled", i)
		}
	}
	if st.RateLimited > len(lines)/100 {
		t.Errorf("%d 429s for %d tasks: the shared limit did not hold across skewed clocks", st.RateLimited, len(lines))
	}
	stopAll(t, ws)
}
