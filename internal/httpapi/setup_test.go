package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/internal/testutil"
)

// env is one test's server on its own queue and account.
type env struct {
	r       *testutil.Redis
	srv     *Server
	ts      *httptest.Server
	opt     asynq.RedisConnOpt
	queue   string
	account string
	logs    *syncBuffer
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// setup starts a server on a test Redis; mutate adjusts its Config. The
// account list is the test's own account, so tests never see each other.
func setup(t *testing.T, mutate func(*Config)) *env {
	t.Helper()
	r := testutil.NewRedis(t)
	opt, err := asynq.ParseRedisURI(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	name := testutil.Name(t)
	e := &env{r: r, opt: opt, queue: "q-" + name, account: name, logs: &syncBuffer{}}
	testutil.CleanupAccount(t, r.Client, e.account) // tenant budgets and whatever else the test wrote
	cfg := Config{
		Redis:        r.Client,
		RedisConnOpt: opt,
		Logger:       zerolog.New(e.logs).Level(zerolog.DebugLevel),
		Accounts:     func(context.Context) ([]string, error) { return []string{e.account}, nil },
	}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	e.ts = httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		e.ts.Close()
		ctx := context.Background()
		testutil.DeleteAsynqQueue(t, r.Client, e.queue)
		r.Client.Del(ctx, keys.Pause(e.account), keys.Queues(e.account), keys.Stats(e.account), keys.Limits(e.account))
		_ = srv.Close()
	})
	return e
}

// do sends a request with an optional JSON body and bearer token and returns
// the status and the body.
func (e *env) do(t *testing.T, method, path, body, token string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if method == http.MethodPost || method == http.MethodPut {
		req.Header.Set("Content-Type", "application/json")
	}
	return e.send(t, req)
}

// send sends req as it is and returns the status and the body.
func (e *env) send(t *testing.T, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// doJSON is do that decodes the response body into out and checks the status.
func (e *env) doJSON(t *testing.T, method, path, body, token string, want int, out any) {
	t.Helper()
	code, b := e.do(t, method, path, body, token)
	if code != want {
		t.Fatalf("%s %s: status %d, want %d; body %s", method, path, code, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: body is not JSON: %v\n%s", method, path, err, b)
		}
	}
}

// problem is doJSON for an error: it checks the status, the problem+json
// content type and the stable code, and returns the problem.
func (e *env) problem(t *testing.T, method, path, body, token string, wantStatus int, wantCode string) Problem {
	t.Helper()
	var p Problem
	e.doJSON(t, method, path, body, token, wantStatus, &p)
	if p.Code != wantCode || p.Status != wantStatus || p.Type != ProblemTypePrefix+wantCode || p.Title == "" {
		t.Fatalf("%s %s: problem %+v, want code %q status %d", method, path, p, wantCode, wantStatus)
	}
	return p
}

// task returns the JSON of a valid task on e's queue.
func (e *env) task(id string) string {
	m := map[string]any{"model": "gpt-4o-mini", "input": "hello", "queue": e.queue}
	if id != "" {
		m["id"] = id
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// newClient returns a go-redis client for addr, closed at cleanup by GC only:
// tests use it for servers that never answer.
func newClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
}
