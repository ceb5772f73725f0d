package tests

// The harness: build the binary once, give each test a Redis, start worker
// processes, run CLI commands, poll conditions, read status and results.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/fakeopenai"
	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/internal/testutil"
)

// testAPIKey is the API key workers send to the fake (it accepts any).
const testAPIKey = "sk-test-multiprocess"

// Package-wide state set once by TestMain and only read afterwards.
var (
	binPath   string // the promptq binary built by TestMain
	redisURL  string // the Redis every test shares ("" with redisSkip set)
	redisSkip string // why tests needing Redis skip
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "promptq-tests-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binPath = filepath.Join(dir, "promptq")
	build := exec.Command("go", "build", "-o", binPath, "../cmd/promptq")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "tests: go build ../cmd/promptq: %v\n%s", err, out)
		return 1
	}

	redisURL = os.Getenv("TEST_REDIS_URL")
	if redisURL == "" {
		srv, err := spawnRedis(filepath.Join(dir, "redis"))
		switch {
		case errors.Is(err, exec.ErrNotFound):
			redisSkip = "needs a real Redis: set TEST_REDIS_URL or install redis-server"
		case err != nil:
			fmt.Fprintln(os.Stderr, "tests: start redis-server:", err)
			return 1
		default:
			defer srv.stop()
			redisURL = srv.URL
		}
	}
	return m.Run()
}

// needRedis returns the shared Redis URL, or skips t when there is none.
func needRedis(t *testing.T) string {
	t.Helper()
	if redisURL == "" {
		t.Skip(redisSkip)
	}
	return redisURL
}

// redisServer is a redis-server process owned by the tests.
type redisServer struct {
	URL  string
	Addr string
	cmd  *exec.Cmd
	out  *syncBuffer
}

// spawnRedis starts `redis-server` with its working directory in dir, no
// persistence unless extra says otherwise, on a free loopback port, and
// waits until it answers PING.
func spawnRedis(dir string, extra ...string) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no"}, extra...)
	cmd := exec.Command(bin, args...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &redisServer{URL: fmt.Sprintf("redis://127.0.0.1:%d/0", port), Addr: fmt.Sprintf("127.0.0.1:%d", port), cmd: cmd, out: out}
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("redis-server on %s did not answer PING within 10s:\n%s", s.Addr, out.String())
		}
		time.Sleep(50 * time.Millisecond) // polling for readiness, not waiting a fixed time
	}
	return s, nil
}

// stop kills the server and reaps it.
func (s *redisServer) stop() {
	if s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}

// startRedisServer starts a Redis of t's own (for restarts, AOF, ...) with
// extra redis-server arguments appended; it is killed when t ends.
func startRedisServer(t *testing.T, extra ...string) *redisServer {
	t.Helper()
	s, err := spawnRedis(filepath.Join(t.TempDir(), "redis"), extra...)
	if errors.Is(err, exec.ErrNotFound) {
		t.Skip("redis-server is not installed")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	return s
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startFake runs the fake provider in the test process and returns it with
// the base URL workers use (srv.URL + "/v1"). It is closed when t ends,
// after the workers (cleanups run last-registered first).
func startFake(t *testing.T, cfg fakeopenai.Config) (*fakeopenai.Server, string) {
	t.Helper()
	fake := fakeopenai.New(cfg)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	return fake, srv.URL + "/v1"
}

// setup is what most tests start from: the shared Redis, a fake provider,
// and a queue and account unique to the test.
type setup struct {
	Redis   string
	Fake    *fakeopenai.Server
	BaseURL string
	Queue   string
	Account string
	Spool   string // the workers' --spool-dir (kept across worker restarts)
}

func newSetup(t *testing.T, cfg fakeopenai.Config) *setup {
	t.Helper()
	url := needRedis(t)
	fake, base := startFake(t, cfg)
	s := &setup{Redis: url, Fake: fake, BaseURL: base, Queue: "q-" + testutil.Name(t), Account: "a-" + testutil.Name(t), Spool: t.TempDir()}
	t.Cleanup(func() { deleteQueue(t, url, s.Queue); deleteAccount(t, url, s.Account) })
	return s
}

// deleteQueue removes a queue the test created with all its keys, so the
// shared Redis does not collect them (asynq's DeleteQueue keeps completed
// tasks). Cleanup is best effort.
func deleteQueue(t *testing.T, url, queue string) {
	t.Helper()
	deleteKeys(t, url, keys.AsynqQueuePattern(queue), keys.AsynqQueues(), queue)
}

// deleteAccount removes an account the test created: its promptq keys and
// its entry in the registry of accounts. Cleanup is best effort.
func deleteAccount(t *testing.T, url, account string) {
	t.Helper()
	deleteKeys(t, url, keys.AccountPattern(account), keys.Accounts(), account)
}

// deleteKeys deletes the keys matching pattern and removes member from set.
func deleteKeys(t *testing.T, url, pattern, set, member string) {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx := context.Background()
	it := c.Scan(ctx, 0, pattern, 500).Iterator()
	for it.Next(ctx) {
		c.Del(ctx, it.Val())
	}
	if err := c.SRem(ctx, set, member).Err(); err != nil {
		t.Logf("cleanup: %v", err)
	}
}

// workerArgs are the flags of one worker of s, with extra flags appended
// (a later flag overrides an earlier one).
func (s *setup) workerArgs(concurrency int, extra ...string) []string {
	return append([]string{"worker", "--redis", s.Redis, "--openai-base-url", s.BaseURL,
		"--concurrency", strconv.Itoa(concurrency), "--queues", s.Queue + "=1", "--account", s.Account,
		"--delayed-check-interval", "100ms", "--spool-dir", s.Spool}, extra...)
}

// startWorkers starts n workers of s and waits until each has started.
func (s *setup) startWorkers(t *testing.T, n, concurrency int, extra ...string) []*proc {
	t.Helper()
	ws := make([]*proc, n)
	for i := range ws {
		ws[i] = startWorker(t, nil, s.workerArgs(concurrency, extra...)...)
	}
	for _, w := range ws {
		w.waitStarted(t)
	}
	return ws
}

// enqueue writes lines as a JSONL file, runs `promptq enqueue` on it and
// checks that every line was enqueued. It returns the file's path.
func (s *setup) enqueue(t *testing.T, lines []taskLine) string {
	t.Helper()
	path := writeJSONL(t, lines)
	out, errOut, code := runCLI(t, "", "enqueue", "--redis", s.Redis, "--file", path)
	want := fmt.Sprintf("enqueued: %d, duplicates: 0, invalid: 0", len(lines))
	if code != 0 || strings.TrimSpace(out) != want {
		t.Fatalf("enqueue: exit %d, stdout %q (want %q), stderr %q", code, out, want, errOut)
	}
	return path
}

// status runs `promptq status --json --account` for s.
func (s *setup) status(t *testing.T) statusReport {
	t.Helper()
	return getStatus(t, s.Redis, s.Account)
}

// queueStatus is s's queue in `promptq status`.
func (s *setup) queueStatus(t *testing.T) queueCounts {
	t.Helper()
	return s.status(t).Queues[s.Queue]
}

// waitCompleted waits until n tasks of s's queue are completed.
func (s *setup) waitCompleted(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	var last queueCounts
	waitFor(t, timeout, fmt.Sprintf("%d completed tasks in queue %s", n, s.Queue), func() bool {
		last = s.queueStatus(t)
		return last.Completed >= n
	}, func() string { return fmt.Sprintf("last status: %+v", last) })
}

// results runs `promptq results --queue` for s's queue.
func (s *setup) results(t *testing.T) []result {
	t.Helper()
	return getResults(t, s.Redis, s.Queue)
}

// ---------------------------------------------------------------------------
// Processes.

// proc is a promptq process started by a test: its combined stdout and
// stderr are kept and printed with t.Log if the test fails.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{} // closed when the process has exited and been reaped
	err  error         // Wait's result, valid after done
}

// startWorker starts `promptq <args...>` (args normally begin with "worker")
// with JSON logs, the test API key and env appended to a cleaned copy of the
// environment. It is killed at the end of the test if still running.
func startWorker(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(cleanEnv(), append([]string{"OPENAI_API_KEY=" + testAPIKey, "LOG_FORMAT=json", "LOG_LEVEL=info"}, env...)...)
	p := &proc{cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start promptq %s: %v", args[0], err)
	}
	p.name = fmt.Sprintf("%s[pid %d]", args[0], cmd.Process.Pid)
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("---- %s output ----\n%s", p.name, tail(p.out.String(), 200))
		}
	})
	return p
}

// waitStarted waits for the worker's "worker started" log line, or fails if
// the process exits first.
func (p *proc) waitStarted(t *testing.T) {
	t.Helper()
	waitFor(t, 15*time.Second, p.name+" to log \"worker started\"", func() bool {
		select {
		case <-p.done:
			t.Fatalf("%s exited before it started: %v\n%s", p.name, p.err, p.out.String())
		default:
		}
		return strings.Contains(p.out.String(), `"worker started"`)
	}, nil)
}

// Stop sends SIGTERM and asserts that the process exits 0 within the
// worker's shutdown timeout (30s) plus a margin.
func (p *proc) Stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(45 * time.Second):
		p.Kill()
		t.Fatalf("%s did not exit within 45s of SIGTERM", p.name)
	}
	if p.err != nil {
		t.Errorf("%s: exit after SIGTERM: %v (want exit 0)\n%s", p.name, p.err, tail(p.out.String(), 50))
	}
}

// Kill sends SIGKILL (kill -9) and waits for the process to be reaped.
func (p *proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Logs returns what the process has written so far.
func (p *proc) Logs() string { return p.out.String() }

// stopAll stops every worker concurrently (each shutdown can take a while).
func stopAll(t *testing.T, ws []*proc) {
	t.Helper()
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() { defer wg.Done(); w.Stop(t) }()
	}
	wg.Wait()
}

// runCLI runs `promptq args...` with stdin and returns its stdout, stderr
// and exit code. It fails t if the command cannot be run or takes over a minute.
func runCLI(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = cleanEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && ctx.Err() == nil:
		code = exit.ExitCode()
	default:
		t.Fatalf("promptq %s: %v\nstderr: %s", strings.Join(args, " "), err, e.String())
	}
	return o.String(), e.String(), code
}

// cleanEnv is the test's environment without the variables promptq reads,
// so a developer's shell settings cannot change what a test runs.
func cleanEnv() []string {
	prefixes := []string{"REDIS_URL=", "OPENAI_", "PROMPTQ_", "LOG_", "WORKER_", "QUOTA_", "DAILY_", "PAUSE_",
		"MAX_", "DEFAULT_MAX_", "REQUEST_TIMEOUT=", "SHUTDOWN_TIMEOUT=", "DELAYED_TASK_", "RESULT_RETENTION="}
	var env []string
outer:
	for _, kv := range os.Environ() {
		for _, p := range prefixes {
			if strings.HasPrefix(kv, p) {
				continue outer
			}
		}
		env = append(env, kv)
	}
	return env
}

// waitFor polls cond every 100ms until it is true, and fails t after
// timeout naming what it waited for (plus detail(), when given).
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool, detail func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("timed out after %v waiting for %s", timeout, what)
			if detail != nil {
				msg += "; " + detail()
			}
			t.Fatal(msg)
		}
		<-tick.C
	}
}

// ---------------------------------------------------------------------------
// Inputs and outputs of the CLI.

// taskLine is one line of an enqueue file.
type taskLine struct {
	ID              string `json:"id,omitempty"`
	Model           string `json:"model,omitempty"`
	Input           string `json:"input,omitempty"`
	MaxOutputTokens int    `json:"max_output_tokens,omitempty"`
	Stream          bool   `json:"stream,omitempty"`
	Endpoint        string `json:"endpoint,omitempty"`
	Queue           string `json:"queue,omitempty"`
}

// batch returns n tasks for queue with ids prefix-000..., mixing both
// endpoints and streaming on and off.
func batch(queue, prefix string, n int) []taskLine {
	lines := make([]taskLine, n)
	for i := range lines {
		ep := "responses"
		if i%2 == 1 {
			ep = "chat_completions"
		}
		lines[i] = taskLine{ID: fmt.Sprintf("%s-%03d", prefix, i), Model: "gpt-4o-mini",
			Input: fmt.Sprintf("Say something about the number %d.", i), MaxOutputTokens: 32,
			Stream: i%4 >= 2, Endpoint: ep, Queue: queue}
	}
	return lines
}

func ids(lines []taskLine) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.ID
	}
	return out
}

// writeJSONL writes lines to a file in t's temp dir and returns its path.
func writeJSONL(t *testing.T, lines []taskLine) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, l := range lines {
		if err := enc.Encode(l); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "tasks.jsonl")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// queueCounts is one queue in `promptq status --json`.
type queueCounts struct {
	Pending   int  `json:"pending"`
	Active    int  `json:"active"`
	Scheduled int  `json:"scheduled"`
	Retry     int  `json:"retry"`
	Archived  int  `json:"archived"`
	Completed int  `json:"completed"`
	Paused    bool `json:"paused"`
}

// pauseInfo is a pause state in `promptq status --json`.
type pauseInfo struct {
	Paused  bool    `json:"paused"`
	Until   *string `json:"until"`
	Reason  string  `json:"reason"`
	Kind    string  `json:"kind"`
	SetBy   string  `json:"set_by"`
	Account string  `json:"account"`
}

// statusReport is `promptq status --json`.
type statusReport struct {
	Queues   map[string]queueCounts     `json:"queues"`
	Pause    pauseInfo                  `json:"pause"`
	Accounts map[string]pauseInfo       `json:"accounts"`
	Quota    map[string]json.RawMessage `json:"quota"`
}

func getStatus(t *testing.T, redisURL, account string) statusReport {
	t.Helper()
	args := []string{"status", "--redis", redisURL, "--json"}
	if account != "" {
		args = append(args, "--account", account)
	}
	out, errOut, code := runCLI(t, "", args...)
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, errOut)
	}
	var rep statusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return rep
}

// result is one line of `promptq results`.
type result struct {
	ID         string `json:"id"`
	TaskID     string `json:"task_id"`
	Queue      string `json:"queue"`
	Status     string `json:"status"`
	OutputText string `json:"output_text"`
	Usage      struct {
		InputTokens  int64 `json:"input_tokens"`
		OutputTokens int64 `json:"output_tokens"`
		TotalTokens  int64 `json:"total_tokens"`
	} `json:"usage"`
	Error     string `json:"error"`
	ErrorKind string `json:"error_kind"`
	Attempts  int    `json:"attempts"`
	Account   string `json:"account"`
}

func getResults(t *testing.T, redisURL, queue string) []result {
	t.Helper()
	out, errOut, code := runCLI(t, "", "results", "--redis", redisURL, "--queue", queue)
	if code != 0 {
		t.Fatalf("results: exit %d: %s", code, errOut)
	}
	var rs []result
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("results line %q: %v", sc.Text(), err)
		}
		rs = append(rs, r)
	}
	return rs
}

// requireAllCompleted asserts that rs holds every id in want exactly once,
// nothing else, each completed with output text and usage.
func requireAllCompleted(t *testing.T, rs []result, want []string) {
	t.Helper()
	seen := map[string]int{}
	for _, r := range rs {
		seen[r.ID]++
		switch {
		case r.Status != "completed":
			t.Errorf("result %s: status %q (error %q, kind %q), want completed", r.ID, r.Status, r.Error, r.ErrorKind)
		case r.OutputText == "":
			t.Errorf("result %s: empty output_text", r.ID)
		case r.Usage.InputTokens <= 0 || r.Usage.OutputTokens <= 0 || r.Usage.TotalTokens <= 0:
			t.Errorf("result %s: usage %+v, want all positive", r.ID, r.Usage)
		}
	}
	for _, id := range want {
		if seen[id] != 1 {
			t.Errorf("result %s: present %d times, want exactly once", id, seen[id])
		}
		delete(seen, id)
	}
	for id, n := range seen {
		t.Errorf("unexpected result %q (%d times)", id, n)
	}
}

// ---------------------------------------------------------------------------
// Small utilities.

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines omitted)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// jsonString renders v as JSON for failure messages.
func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}
