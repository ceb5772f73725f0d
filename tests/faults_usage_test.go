package tests

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/promptq/promptq/internal/fakeopenai"
	"github.com/promptq/promptq/internal/testutil"
)

// TestFaultNegativeUsage (issue 16, item 7): an OpenAI-compatible server
// reports negative usage on every answer, against a 10,000-token daily
// budget. Before the fix each settle subtracted its "usage" from the daily
// token counter, which went negative, and 50 requests were admitted. Now
// the figure is refused (the reservation's debit stands and the
// calibration counts a bad signal), the counter never drops below zero,
// the budget holds (about 1,030 tokens reserved per request: at most 9
// requests), and each worker logs the garbage once.
func TestFaultNegativeUsage(t *testing.T) {
	url := needRedis(t)
	fake := fakeopenai.New(fakeopenai.Config{Latency: 50 * time.Millisecond})
	srv := httptest.NewServer(fakeopenai.RewriteUsage(fake, func(n int64) int64 { return -n }))
	t.Cleanup(srv.Close)
	s := &setup{Redis: url, Fake: fake, BaseURL: srv.URL + "/v1", Queue: "q-" + testutil.Name(t), Account: "a-" + testutil.Name(t), Spool: t.TempDir()}
	t.Cleanup(func() { deleteQueue(t, url, s.Queue); deleteAccount(t, url, s.Account) })

	workers := s.startWorkers(t, 2, 2, "--daily-token-limit", "10000", "--quota-threshold", "1")
	lines := batch(s.Queue, "negusage", 40)
	for i := range lines {
		lines[i].MaxOutputTokens = 1000
	}
	marks := []logMark{markLogs(workers[0]), markLogs(workers[1])}
	s.enqueue(t, lines)
	var acct pauseInfo
	waitFor(t, 30*time.Second, "the daily budget to pause the account", func() bool {
		acct = s.status(t).Accounts[s.Account]
		return acct.Paused && acct.Kind == "daily"
	}, nil)
	waitFor(t, 10*time.Second, "in-flight requests to finish", func() bool { return fake.Stats().InFlight == 0 }, nil)

	st := fake.Stats()
	var day struct {
		Daily struct{ Tokens int64 }
	}
	raw := s.status(t).Quota[s.Account]
	if err := jsonUnmarshal(string(raw), &day); err != nil {
		t.Fatal(err)
	}
	warned := 0
	for i, m := range marks {
		n := 0
		for _, l := range m.since() {
			if strings.Contains(l, "provider reported impossible usage") {
				n++
			}
		}
		if n > 1 {
			t.Errorf("worker %d logged the bad usage %d times, want once", i, n)
		}
		warned += n
	}
	t.Logf("provider requests %d (all answered with negative usage); daily tokens counted %d of 10000; workers that logged it: %d",
		st.Requests, day.Daily.Tokens, warned)
	if st.Requests > 9 {
		t.Errorf("%d requests admitted against a 10,000-token daily budget at ~1,030 tokens each, want at most 9", st.Requests)
	}
	if day.Daily.Tokens < 0 {
		t.Errorf("daily token counter %d, negative", day.Daily.Tokens)
	}
	if warned == 0 {
		t.Error("no worker logged the negative usage")
	}
	stopAll(t, workers)
}
