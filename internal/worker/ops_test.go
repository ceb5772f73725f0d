package worker

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/fakeopenai"
	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/tasks"
)

func TestOpsHandler(t *testing.T) {
	f := setup(t, fakeopenai.Config{RPM: 600})
	m := NewMetrics(f.account)
	f.h.cfg.Metrics = m
	reg, err := OpsRegistry(m)
	if err != nil {
		t.Fatal(err)
	}
	// One task that succeeds, one the provider fails with a 5xx; and a
	// pause, which is cluster state: serve's, not this worker's.
	at, err := tasks.NewPromptTask(&tasks.Payload{Model: "gpt-4o-mini", Input: tasks.Input{Text: "hello"}, MaxOutputTokens: 32}, tasks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.h.ProcessTask(context.Background(), task(string(at.Payload()))); err != nil {
		t.Fatal(err)
	}
	f.fake.SetMode(fakeopenai.ModeServerError, time.Minute)
	if err := f.h.ProcessTask(context.Background(), task(`{"model":"gpt-4o-mini","input":"hello","max_output_tokens":32,"endpoint":"chat_completions"}`)); err == nil {
		t.Fatal("a 5xx answer succeeded")
	}
	if _, err := f.gate.Pause(context.Background(), f.account, pausegate.PauseRequest{Until: time.Now().Add(time.Hour), Reason: "test", Kind: "manual"}); err != nil {
		t.Fatal(err)
	}

	srv := httptest.NewServer(OpsHandler(f.rdb.Client, reg))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("/healthz = %d %s", code, body)
	}
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	acct := `account="` + f.account + `"`
	for _, want := range []string{
		`promptq_build_info{`,
		`promptq_provider_requests_total{` + acct + `,endpoint="responses",error_kind="none",model="gpt-4o-mini",outcome="success"} 1`,
		`promptq_provider_requests_total{` + acct + `,endpoint="chat_completions",error_kind="server",model="gpt-4o-mini",outcome="error"} 1`,
		`promptq_provider_request_duration_seconds_count{` + acct + `,endpoint="responses",model="gpt-4o-mini",outcome="success"} 1`,
		`promptq_provider_request_duration_seconds_count{` + acct + `,endpoint="chat_completions",model="gpt-4o-mini",outcome="error"} 1`,
		// Only the stamped task (tasks.NewPromptTask) has an enqueue time.
		`promptq_task_start_delay_seconds_count{` + acct + `,queue=""} 1`,
		`promptq_quota_wait_seconds_count{` + acct + `,result="admitted"} 2`,
		`promptq_request_tokens_count{` + acct + `,direction="output",model="gpt-4o-mini"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The cluster-wide series are serve's: a worker exporting them too
	// would be counted once per pod.
	for _, absent := range []string{"promptq_paused", "promptq_quota_limit", "promptq_quota_available", "promptq_throttled_total", "asynq_"} {
		if strings.Contains(body, absent) {
			t.Errorf("/metrics of a worker has %s", absent)
		}
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}

	// Redis unreachable: unhealthy.
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer dead.Close()
	rec := httptest.NewRecorder()
	OpsHandler(dead, reg).ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("/healthz without Redis = %d, want 503", rec.Code)
	}
}

// A nil *Metrics records nothing and does not panic (tests, the benchmark).
func TestNilMetrics(t *testing.T) {
	var m *Metrics
	m.providerCall("responses", "m", "", time.Second)
	m.taskStarted("q", time.Second)
	m.admitted(time.Second, true)
	m.usage("m", 1, 2)
}
