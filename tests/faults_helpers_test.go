package tests

// Helpers of the fault-injection tests (faults_*_test.go): a setup on a
// Redis of the test's own, stopping and restarting that Redis on the same
// port, reading quota figures from `promptq status --json`, and counting
// log lines.

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/fakeopenai"
	"github.com/promptq/promptq/internal/testutil"
)

// newSetupOn is newSetup on a Redis of the test's own, reached at url (the
// server's URL, or one with credentials). Nothing is cleaned up in Redis:
// the server dies with the test.
func newSetupOn(t *testing.T, url string, cfg fakeopenai.Config) *setup {
	t.Helper()
	fake, base := startFake(t, cfg)
	return &setup{Redis: url, Fake: fake, BaseURL: base, Queue: "q-" + testutil.Name(t), Account: "a-" + testutil.Name(t), Spool: t.TempDir()}
}

// halt sends sig to the server and waits until it has exited.
func (s *redisServer) halt(t *testing.T, sig syscall.Signal) {
	t.Helper()
	_ = s.cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
		t.Fatalf("redis-server on %s did not exit within 20s of %v:\n%s", s.Addr, sig, tail(s.out.String(), 30))
	}
}

// start runs the server again with the same arguments (same port, same
// directory, so the same AOF/RDB files) and waits until it answers PING
// and has loaded its data.
func (s *redisServer) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(s.cmd.Path, s.cmd.Args[1:]...)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("restart redis-server: %v", err)
	}
	s.cmd = cmd
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer c.Close()
	waitFor(t, 15*time.Second, "the restarted redis-server to answer PING", func() bool {
		// PING answers LOADING errors while the AOF is replayed.
		return c.Ping(context.Background()).Err() == nil
	}, func() string { return tail(s.out.String(), 30) })
}

// client is a go-redis client on the server (as the default user).
func (s *redisServer) client(t *testing.T) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// quotaFigures are the parts of an account's quota in `promptq status
// --json` that these tests read.
type quotaFigures struct {
	InFlight int64 `json:"in_flight"`
	Daily    struct {
		Requests     int64  `json:"requests"`
		RequestLimit *int64 `json:"request_limit"` // null: no daily budget
	} `json:"daily"`
}

// quota reads s.Account's quota figures from `promptq status --json`.
func (s *setup) quota(t *testing.T) quotaFigures {
	t.Helper()
	raw, ok := s.status(t).Quota[s.Account]
	if !ok {
		t.Fatalf("status --json has no quota for account %s", s.Account)
	}
	var q quotaFigures
	if err := json.Unmarshal(raw, &q); err != nil {
		t.Fatalf("quota of %s: %v in %s", s.Account, err, raw)
	}
	return q
}

// logMark is a position in a process's output, to look at what it logged
// since.
type logMark struct {
	p   *proc
	pos int
}

func markLogs(p *proc) logMark { return logMark{p, len(p.Logs())} }

// since returns the lines the process logged after the mark.
func (m logMark) since() []string {
	s := m.p.Logs()[m.pos:]
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return strings.Split(strings.TrimRight(s, "\n"), "\n")
}

// requireNoLoss waits until every task of lines is completed and checks
// each result exactly once and nothing archived, pending or retrying.
func (s *setup) requireNoLoss(t *testing.T, lines []taskLine, timeout time.Duration) []result {
	t.Helper()
	s.waitCompleted(t, len(lines), timeout)
	rs := s.results(t)
	requireAllCompleted(t, rs, ids(lines))
	if q := s.queueStatus(t); q.Archived != 0 || q.Pending != 0 || q.Retry != 0 || q.Active != 0 {
		t.Errorf("queue after the batch: %s, want nothing archived, pending, retrying or active", jsonString(q))
	}
	return rs
}

// callsPerTask summarises the provider's ByTask counts: how many tasks were
// sent more than once, and the largest count.
func callsPerTask(st fakeopenai.Stats, lines []taskLine) (dup, most int) {
	for _, l := range lines {
		n := st.ByTask[l.ID]
		if n > 1 {
			dup++
		}
		most = max(most, n)
	}
	return dup, most
}

// hasAny reports which of needles occur in haystack.
func hasAny(haystack string, needles ...string) []string {
	var found []string
	for _, n := range needles {
		if n != "" && strings.Contains(haystack, n) {
			found = append(found, n)
		}
	}
	return found
}

// since formats a duration from start for logs.
func since(start time.Time) string {
	return fmt.Sprint(time.Since(start).Round(100 * time.Millisecond))
}

// redisClient is a go-redis client for url, closed when t ends.
func redisClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}
