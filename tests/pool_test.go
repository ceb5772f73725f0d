package tests

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/fakeopenai"
	"github.com/promptq/promptq/internal/testutil"
)

// poolSetup is a pool of accounts served by one multi-account fake provider,
// a pool file for the workers, and a queue unique to the test.
type poolSetup struct {
	Redis   string
	Fake    *fakeopenai.Accounts
	Queue   string
	Pool    string            // the pool's name
	Names   []string          // account names, in spec order
	File    string            // the pool file
	KeyEnv  []string          // NAME=key for every account, for the workers' environment
	Keys    map[string]string // account -> its secret key
	Spool   string
	baseURL string
}

// poolAccount is one account of a test pool: its fake limits and its entry
// in the pool file.
type poolAccount struct {
	spec  fakeopenai.AccountSpec
	tier  int
	extra string // more YAML lines for the account (indented 4)
}

func newPoolSetup(t *testing.T, base fakeopenai.Config, accts []poolAccount) *poolSetup {
	t.Helper()
	url := needRedis(t)
	id := testutil.Name(t)
	s := &poolSetup{Redis: url, Queue: "q-" + id, Pool: "p-" + id, Spool: t.TempDir(), Keys: map[string]string{}}
	var specs []fakeopenai.AccountSpec
	for i, a := range accts {
		a.spec.Name = fmt.Sprintf("%s-%d", id, i)
		key := fmt.Sprintf("sk-pool-secret-%s-%d-XYZZY", id, i)
		a.spec.APIKey = key
		s.Keys[a.spec.Name] = key
		s.Names = append(s.Names, a.spec.Name)
		specs = append(specs, a.spec)
		s.KeyEnv = append(s.KeyEnv, fmt.Sprintf("POOL_KEY_%d=%s", i, key))
	}
	fake, err := fakeopenai.NewAccounts(base, specs)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	s.Fake, s.baseURL = fake, srv.URL
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\naccounts:\n", s.Pool)
	for i, a := range accts {
		fmt.Fprintf(&b, "  - name: %s\n    base_url: %s/%s/v1\n    api_key_env: POOL_KEY_%d\n    tier: %d\n%s",
			s.Names[i], srv.URL, s.Names[i], i, max(a.tier, 1), a.extra)
	}
	s.File = filepath.Join(t.TempDir(), "pool.yaml")
	if err := os.WriteFile(s.File, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		deleteQueue(t, url, s.Queue)
		deleteAccount(t, url, s.Pool)
		for _, n := range s.Names {
			deleteAccount(t, url, n)
		}
	})
	return s
}

func (s *poolSetup) startWorkers(t *testing.T, n, concurrency int, extra ...string) []*proc {
	t.Helper()
	ws := make([]*proc, n)
	for i := range ws {
		args := append([]string{"worker", "--redis", s.Redis, "--pool", s.File,
			"--concurrency", fmt.Sprint(concurrency), "--queues", s.Queue + "=1",
			"--delayed-check-interval", "100ms", "--spool-dir", s.Spool}, extra...)
		ws[i] = startWorker(t, s.KeyEnv, args...)
	}
	for _, w := range ws {
		w.waitStarted(t)
	}
	return ws
}

func (s *poolSetup) enqueue(t *testing.T, lines []taskLine) {
	t.Helper()
	path := writeJSONL(t, lines)
	out, errOut, code := runCLI(t, "", "enqueue", "--redis", s.Redis, "--file", path)
	if want := fmt.Sprintf("enqueued: %d, duplicates: 0, invalid: 0", len(lines)); code != 0 || strings.TrimSpace(out) != want {
		t.Fatalf("enqueue: exit %d, stdout %q (want %q), stderr %q", code, out, want, errOut)
	}
}

// waitResults waits until every task of lines has finished and returns the
// results by id.
func (s *poolSetup) waitResults(t *testing.T, lines []taskLine, timeout time.Duration) map[string]result {
	t.Helper()
	var rs []result
	waitFor(t, timeout, fmt.Sprintf("%d tasks to finish", len(lines)), func() bool {
		rs = getResults(t, s.Redis, s.Queue)
		return len(rs) >= len(lines)
	}, func() string { return fmt.Sprintf("%d finished", len(rs)) })
	byID := make(map[string]result, len(rs))
	for _, r := range rs {
		byID[r.ID] = r
	}
	return byID
}

// poolLines are n tasks for queue with prose prompts of realistic lengths.
func poolLines(queue, prefix string, n int) []taskLine {
	lines := batch(queue, prefix, n)
	for i := range lines {
		lines[i].Input = strings.Repeat(fmt.Sprintf("Summarise the following note %d about rate limits and queues. ", i), 4+i%12)
		lines[i].MaxOutputTokens = 64
	}
	return lines
}

// TestPoolServesOneQueue: two accounts serve one queue from three worker
// processes. Every task completes once, each result names the account that
// served it, both accounts carry about half, and the shared view of each
// account's limits keeps 429s under 0.5 %.
func TestPoolServesOneQueue(t *testing.T) {
	t.Parallel()
	base := fakeopenai.Config{RPM: 300, TPM: 24_000, Burst: 5 * time.Second, Latency: 200 * time.Millisecond, OutputTokens: 32, Charge: fakeopenai.ChargeChars}
	s := newPoolSetup(t, base, []poolAccount{{}, {}})
	lines := poolLines(s.Queue, "pool", 240)
	s.enqueue(t, lines)
	start := time.Now()
	s.startWorkers(t, 3, 8)
	rs := s.waitResults(t, lines, 3*time.Minute)
	took := time.Since(start)

	served := map[string]int{}
	for _, l := range lines {
		r, ok := rs[l.ID]
		if !ok || r.Status != "completed" {
			t.Fatalf("task %s: %+v; want completed", l.ID, r)
		}
		served[r.Account]++
	}
	total, limited := 0, 0
	for _, n := range s.Names {
		st := s.Fake.Account(n).Stats()
		total += st.Requests
		limited += st.RateLimited
		if share := float64(served[n]) / float64(len(lines)); share < 0.3 || share > 0.7 {
			t.Errorf("account %s served %.0f%% of the tasks, want about half", n, 100*share)
		}
	}
	if served[""] > 0 {
		t.Errorf("%d results name no account", served[""])
	}
	if dup := total - limited - len(lines); dup > 0 {
		t.Errorf("%d provider calls more than tasks (besides 429s)", dup)
	}
	if share := float64(limited) / float64(total); share > 0.005 {
		t.Errorf("429 share %.2f%% (%d of %d), want at most 0.5%%", 100*share, limited, total)
	}
	t.Logf("240 tasks on 2 accounts of 300 RPM / 24k TPM in %v; served %v; 429s %d of %d", took.Round(time.Millisecond), served, limited, total)
}

// TestPoolFailover: one account runs out of quota mid-run. No task is lost or
// failed, the account gets no more requests than were in flight when it
// answered its first quota error, and the other account finishes the batch.
// An account's key appears nowhere in Redis, logs or results.
func TestPoolFailover(t *testing.T) {
	t.Parallel()
	base := fakeopenai.Config{RPM: 600, TPM: 100_000, Burst: 5 * time.Second, Latency: 300 * time.Millisecond, OutputTokens: 16}
	s := newPoolSetup(t, base, []poolAccount{{}, {}})
	const workers, concurrency = 3, 6
	lines := poolLines(s.Queue, "fo", 150)
	s.enqueue(t, lines)
	ws := s.startWorkers(t, workers, concurrency)
	east, west := s.Names[0], s.Names[1]
	waitFor(t, time.Minute, "a third of the batch", func() bool {
		return s.Fake.Account(east).Stats().OK+s.Fake.Account(west).Stats().OK >= 50
	}, nil)
	s.Fake.Account(east).SetMode(fakeopenai.ModeInsufficientQuota, 0)
	rs := s.waitResults(t, lines, 3*time.Minute)

	for _, l := range lines {
		if r := rs[l.ID]; r.Status != "completed" {
			t.Errorf("task %s: %+v; want completed", l.ID, r)
		}
	}
	st := s.Fake.Account(east).Stats()
	if inFlight := workers * concurrency; st.RequestsAfterFirstQuotaError > inFlight {
		t.Errorf("the account out of quota got %d requests after its first quota error, more than the %d that can be in flight",
			st.RequestsAfterFirstQuotaError, inFlight)
	}
	if st.QuotaErrors == 0 {
		t.Error("the account was never asked after it ran out of quota: the test did not test failover")
	}
	// The refused tasks went to the other account in the same attempt: a
	// failover is logged, and no task spent a retry.
	failovers := 0
	for _, w := range ws {
		failovers += strings.Count(w.Logs(), "failing over to another account of the pool")
	}
	if failovers == 0 {
		t.Error("no worker logged a failover: the refused tasks went back to asynq instead")
	}
	for _, r := range rs {
		if r.Attempts > 1 {
			t.Errorf("task %s took %d attempts; a failover must not spend a retry", r.ID, r.Attempts)
		}
	}
	// Resume brings traffic back to the account.
	s.Fake.Account(east).SetMode(fakeopenai.ModeNormal, 0)
	if _, errOut, code := runCLI(t, "", "resume", "--redis", s.Redis, "--account", east); code != 0 {
		t.Fatalf("resume: %s", errOut)
	}
	before := s.Fake.Account(east).Stats().OK
	more := poolLines(s.Queue, "back", 40)
	s.enqueue(t, more)
	s.waitResults(t, append(lines, more...), 2*time.Minute)
	if got := s.Fake.Account(east).Stats().OK - before; got == 0 {
		t.Error("after resume --account, the account took no traffic")
	}

	// Keys: nowhere in Redis, logs or results.
	var logs strings.Builder
	for _, w := range ws {
		logs.WriteString(w.Logs())
	}
	results, _, _ := runCLI(t, "", "results", "--redis", s.Redis, "--queue", s.Queue)
	for name, key := range s.Keys {
		secret := key[len(key)-20:]
		if strings.Contains(logs.String(), secret) {
			t.Errorf("account %s's key is in the worker logs", name)
		}
		if strings.Contains(results, secret) {
			t.Errorf("account %s's key is in the results", name)
		}
		if where := scanRedisFor(t, s.Redis, secret); where != "" {
			t.Errorf("account %s's key is in Redis at %s", name, where)
		}
	}
}

// TestPoolTiers: the overflow tier takes traffic only while the primary tier
// is short.
func TestPoolTiers(t *testing.T) {
	t.Parallel()
	base := fakeopenai.Config{RPM: 600, TPM: 200_000, Burst: 2 * time.Second, Latency: 100 * time.Millisecond, OutputTokens: 16}
	s := newPoolSetup(t, base, []poolAccount{{tier: 1}, {tier: 2}})
	primary, overflow := s.Names[0], s.Names[1]
	s.startWorkers(t, 2, 4)
	// A trickle the primary absorbs: 30 tasks, a few a second.
	trickle := poolLines(s.Queue, "calm", 30)
	for i := 0; i < len(trickle); i += 3 {
		s.enqueue(t, trickle[i:i+3])
		time.Sleep(500 * time.Millisecond)
	}
	s.waitResults(t, trickle, time.Minute)
	if n := s.Fake.Account(overflow).Stats().Requests; n != 0 {
		t.Errorf("the overflow tier got %d requests while the primary had headroom", n)
	}
	// The primary runs out of quota: the overflow carries the batch.
	s.Fake.Account(primary).SetMode(fakeopenai.ModeInsufficientQuota, 0)
	rush := poolLines(s.Queue, "rush", 40)
	s.enqueue(t, rush)
	rs := s.waitResults(t, append(trickle, rush...), 2*time.Minute)
	for _, l := range rush {
		if r := rs[l.ID]; r.Status != "completed" || r.Account != overflow {
			t.Errorf("task %s: %s by %q; want completed by the overflow", l.ID, r.Status, r.Account)
		}
	}
}

// scanRedisFor returns a key whose name or value contains s, or "".
func scanRedisFor(t *testing.T, url, s string) string {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx := context.Background()
	it := c.Scan(ctx, 0, "*", 1000).Iterator()
	for it.Next(ctx) {
		k := it.Val()
		if strings.Contains(k, s) {
			return k
		}
		var text string
		switch c.Type(ctx, k).Val() {
		case "string":
			text = c.Get(ctx, k).Val()
		case "hash":
			text = fmt.Sprint(c.HGetAll(ctx, k).Val())
		case "set":
			text = fmt.Sprint(c.SMembers(ctx, k).Val())
		case "zset":
			text = fmt.Sprint(c.ZRange(ctx, k, 0, -1).Val())
		case "list":
			text = fmt.Sprint(c.LRange(ctx, k, 0, -1).Val())
		}
		if strings.Contains(text, s) {
			return k
		}
	}
	return ""
}
