package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/promptq/promptq/internal/status"
	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/quota"
)

func TestPauseResume(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	ctx := context.Background()
	gate, err := pausegate.New(e.r.Client, pausegate.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, active, _ := gate.Check(ctx, e.account); active {
		t.Fatal("paused before the test")
	}

	var pr PauseResponse
	e.doJSON(t, "POST", "/v1/pause?account="+e.account, `{"for":"30m","reason":"provider incident"}`, "", http.StatusOK, &pr)
	if len(pr.Paused) != 1 || pr.Paused[0].Account != e.account || pr.Paused[0].Until == nil || pr.Paused[0].Kind != string(pausegate.KindManual) {
		t.Fatalf("pause response = %+v", pr)
	}
	rec, active, err := gate.Check(ctx, e.account)
	if err != nil || !active {
		t.Fatalf("gate after pause: active %v, err %v", active, err)
	}
	if rec.Reason != "provider incident" || rec.SetBy != SetBy {
		t.Fatalf("record = %+v", rec)
	}
	if left := time.Until(rec.Until); left < 29*time.Minute || left > 31*time.Minute {
		t.Fatalf("pause ends in %v, want about 30m", left)
	}

	// Status reports it as `promptq status --json` would.
	var rep status.Report
	e.doJSON(t, "GET", "/v1/status", "", "", http.StatusOK, &rep)
	if !rep.Accounts[e.account].Paused || rep.Accounts[e.account].Reason != "provider incident" || !rep.Pause.Paused {
		t.Fatalf("status = %+v", rep)
	}
	if _, ok := rep.Quota[e.account]; !ok {
		t.Fatalf("status has no quota for %s: %+v", e.account, rep.Quota)
	}

	// Without an account, resume covers every known account.
	var rr ResumeResponse
	e.doJSON(t, "POST", "/v1/resume", "", "", http.StatusOK, &rr)
	if len(rr.Resumed) != 0 {
		// ResumeAll walks the registered set, which this test does not join;
		// the account-specific resume below is the one that must work.
		t.Logf("resume all: %+v", rr)
	}
	e.doJSON(t, "POST", "/v1/resume?account="+e.account, "", "", http.StatusOK, &rr)
	if len(rr.Resumed) != 1 || rr.Resumed[0] != e.account {
		t.Fatalf("resume response = %+v", rr)
	}
	if _, active, _ := gate.Check(ctx, e.account); active {
		t.Fatal("still paused after resume")
	}

	// Without "for"/"until" the pause is indefinite; without an account it
	// covers the configured accounts.
	e.doJSON(t, "POST", "/v1/pause", "{}", "", http.StatusOK, &pr)
	if len(pr.Paused) != 1 || pr.Paused[0].Account != e.account || pr.Paused[0].Until != nil {
		t.Fatalf("indefinite pause = %+v", pr)
	}
	if rec, active, _ := gate.Check(ctx, e.account); !active || !rec.Until.IsZero() {
		t.Fatalf("indefinite pause record = %+v active %v", rec, active)
	}
	e.doJSON(t, "POST", "/v1/resume?account="+e.account, "", "", http.StatusOK, nil)
}

func TestPauseValidation(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	tests := []struct {
		body, field string
	}{
		{`{"for":"soon"}`, "for"},
		{`{"for":"-5m"}`, "for"},
		{`{"until":"tomorrow"}`, "until"},
		{`{"until":"2001-01-01T00:00:00Z"}`, "until"},
		{`{"for":"5m","until":"2099-01-01T00:00:00Z"}`, "for"},
		{`{"reason":"` + strings.Repeat("x", maxReasonLength+1) + `"}`, "reason"},
		{`{"acount":"typo"}`, "body"},
		{`{"account":"` + e.account + `"}`, "body"}, // the account is named one way: ?account=
		{`{"for":5}`, "for"},
	}
	for _, tt := range tests {
		var p Problem
		e.doJSON(t, "POST", "/v1/pause", tt.body, "", http.StatusBadRequest, &p)
		if p.Field != tt.field || p.Detail == "" || (p.Code != CodeInvalidField && p.Code != CodeInvalidJSON) {
			t.Errorf("%s: problem %+v, want field %q", tt.body, p, tt.field)
		}
		if strings.Contains(p.Detail, "int64") || strings.Contains(p.Detail, "Go ") {
			t.Errorf("%s: detail names a Go type: %q", tt.body, p.Detail)
		}
	}
	e.problem(t, "POST", "/v1/pause?account=bad{account}", "", "", http.StatusBadRequest, CodeInvalidField)
	if _, active, _ := e.srv.gate.Check(context.Background(), e.account); active {
		t.Fatal("a rejected request paused the account")
	}
}

func TestAdminToken(t *testing.T) {
	t.Parallel()
	const token = "s3cret-admin-token-value"
	e := setup(t, func(c *Config) { c.AdminToken = token })
	protected := []struct{ method, path, body string }{
		{"GET", "/v1/status", ""},
		{"GET", "/v1/quota", ""},
		{"POST", "/v1/tasks", e.task("auth-1")},
		{"POST", "/v1/pause", `{"for":"1m"}`},
		{"POST", "/v1/resume", `{}`},
		{"GET", "/v1/tasks/auth-1", ""},
		{"GET", "/metrics", ""},
		{"PUT", "/v1/tenants/auth-t", `{"rpm":60}`},
		{"GET", "/v1/tenants", ""},
		{"DELETE", "/v1/tenants/auth-t", ""},
		{"GET", "/monitoring/", ""},
		{"GET", "/monitoring/api/servers", ""},
	}
	for _, p := range protected {
		for _, bad := range []string{"", "wrong-token", token + "x"} {
			e.problem(t, p.method, p.path, p.body, bad, http.StatusUnauthorized, CodeUnauthorized)
		}
	}
	if _, active, _ := e.srv.gate.Check(context.Background(), e.account); active {
		t.Fatal("an unauthorized pause took effect")
	}
	if ts, err := e.srv.lim.Tenants(context.Background(), e.account); err != nil || len(ts) != 0 {
		t.Fatalf("an unauthorized tenant budget took effect: %+v %v", ts, err)
	}
	for _, p := range protected {
		if code, body := e.do(t, p.method, p.path, p.body, token); code/100 != 2 {
			t.Fatalf("%s %s with the token: %d %s", p.method, p.path, code, body)
		}
	}
	// A browser authenticates to the UI with basic auth, the token as password.
	req, _ := http.NewRequest("GET", e.ts.URL+"/monitoring/", nil)
	req.SetBasicAuth("admin", token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("basic auth: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	for _, open := range []string{"/healthz", "/readyz", "/openapi.json"} {
		if code, body := e.do(t, "GET", open, "", ""); code != http.StatusOK {
			t.Fatalf("%s without token: %d %s", open, code, body)
		}
	}
}

func TestReadOnly(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.ReadOnly = true })
	for _, p := range []struct{ method, path, body string }{
		{"POST", "/v1/tasks", e.task("ro-1")},
		{"POST", "/v1/pause", `{"for":"1m"}`},
		{"POST", "/v1/resume", `{}`},
		{"PUT", "/v1/tenants/ro-t", `{"rpm":60}`},
		{"DELETE", "/v1/tenants/ro-t", ""},
		{"POST", "/monitoring/api/queues/" + e.queue + ":pause", ""},
		{"DELETE", "/monitoring/api/queues/" + e.queue, ""},
	} {
		e.problem(t, p.method, p.path, p.body, "", http.StatusForbidden, CodeReadOnly)
	}
	if _, err := e.srv.insp.GetTaskInfo(e.queue, "ro-1"); err == nil {
		t.Fatal("a read-only server enqueued a task")
	}
	if ts, err := e.srv.lim.Tenants(context.Background(), e.account); err != nil || len(ts) != 0 {
		t.Fatalf("a read-only server set a tenant budget: %+v %v", ts, err)
	}
	e.doJSON(t, "GET", "/v1/status", "", "", http.StatusOK, nil)
	e.doJSON(t, "GET", "/v1/tenants", "", "", http.StatusOK, nil)
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.MaxBody = 4096 })
	big := fmt.Sprintf(`{"model":"m","input":%q,"queue":%q}`, strings.Repeat("a", 5000), e.queue)
	if p := e.problem(t, "POST", "/v1/tasks", big, "", http.StatusRequestEntityTooLarge, CodeBodyTooLarge); p.Field != "body" || !strings.Contains(p.Detail, "4096") {
		t.Fatalf("problem = %+v", p)
	}
	e.doJSON(t, "POST", "/v1/pause", `{"reason":"`+strings.Repeat("r", 5000)+`"}`, "", http.StatusRequestEntityTooLarge, nil)
	e.doJSON(t, "PUT", "/v1/tenants/big", `{"rpm":60,"x":"`+strings.Repeat("r", 5000)+`"}`, "", http.StatusRequestEntityTooLarge, nil)
	// Under the limit passes.
	e.doJSON(t, "POST", "/v1/tasks", e.task("small-1"), "", http.StatusAccepted, nil)
}

func TestMonitoring(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	e.doJSON(t, "POST", "/v1/tasks", e.task("mon-1"), "", http.StatusAccepted, nil)
	code, body := e.do(t, "GET", "/monitoring/", "", "")
	if code != http.StatusOK || !strings.Contains(string(body), "<title>Asynq - Monitoring</title>") {
		t.Fatalf("GET /monitoring/: %d %.300s", code, body)
	}
	type queueJSON struct {
		Queue   string `json:"queue"`
		Pending int    `json:"pending"`
	}
	var queues struct {
		Queues []queueJSON `json:"queues"`
	}
	code, body = e.do(t, "GET", "/monitoring/api/queues", "", "")
	if code == http.StatusInternalServerError {
		// asynqmon fails the whole list when one queue's info cannot be read,
		// e.g. a foreign queue on a shared Redis listing a task id whose hash
		// is gone. Then check our queue alone, and say so.
		bad := brokenQueue(t, e)
		if bad == "" || bad == e.queue {
			t.Fatalf("GET /monitoring/api/queues: %d %s", code, body)
		}
		t.Logf("queue list unavailable because of foreign queue %q; checking %s alone", bad, e.queue)
		var q queueJSON
		e.doJSON(t, "GET", "/monitoring/api/queues/"+e.queue, "", "", http.StatusOK, &struct {
			Current *queueJSON `json:"current"`
		}{&q})
		queues.Queues = []queueJSON{q}
	} else if code != http.StatusOK || json.Unmarshal(body, &queues) != nil {
		t.Fatalf("GET /monitoring/api/queues: %d %s", code, body)
	}
	found := false
	for _, q := range queues.Queues {
		if q.Queue == e.queue {
			found = q.Pending == 1
		}
	}
	if !found {
		t.Fatalf("queue %s with 1 pending not in %+v", e.queue, queues)
	}
}

// brokenQueue returns a queue whose info asynq cannot read, or "".
func brokenQueue(t *testing.T, e *env) string {
	t.Helper()
	names, err := e.srv.insp.Queues()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range names {
		if _, err := e.srv.insp.GetQueueInfo(q); err != nil {
			return q
		}
	}
	return ""
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	ctx := context.Background()
	e.doJSON(t, "POST", "/v1/tasks", "["+e.task("m-1")+","+e.task("m-2")+"]", "", http.StatusAccepted, nil)
	lim, err := quota.New(e.r.Client, quota.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := lim.RecordThrottle(ctx, e.account); err != nil {
		t.Fatal(err)
	}
	e.doJSON(t, "POST", "/v1/pause", `{"for":"10m"}`, "", http.StatusOK, nil)

	code, b := e.do(t, "GET", "/metrics", "", "")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, b)
	}
	text := string(b)
	for _, want := range []string{
		fmt.Sprintf(`asynq_queue_tasks{queue=%q,state="pending"} 2`, e.queue),
		fmt.Sprintf(`asynq_queue_size{queue=%q} 2`, e.queue),
		fmt.Sprintf(`asynq_queue_paused{queue=%q} 0`, e.queue), // not registered for the account
		fmt.Sprintf(`promptq_paused{account=%q} 1`, e.account),
		fmt.Sprintf(`promptq_throttled_total{account=%q} 1`, e.account),
		fmt.Sprintf(`promptq_inflight_reservations{account=%q} 0`, e.account),
		fmt.Sprintf(`promptq_daily_used{account=%q,resource="tokens"} 0`, e.account),
		`promptq_build_info{`,
		fmt.Sprintf(`promptq_scrape_error{account=%q} 0`, e.account),
		"go_goroutines",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, absent := range []string{"promptq_quota_limit{", "promptq_estimate_mean_abs_error_tokens{", "asynq_queue_paused_total", "asynq_tasks_enqueued_total"} {
		if strings.Contains(text, absent) { // unknown limits and estimates have no series; no asynq gauge named _total
			t.Errorf("/metrics has %s:\n%s", absent, text)
		}
	}
	var remaining float64
	prefix := fmt.Sprintf(`promptq_pause_remaining_seconds{account=%q} `, e.account)
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, prefix) {
			fmt.Sscan(strings.TrimPrefix(line, prefix), &remaining)
		}
	}
	if remaining < 590 || remaining > 600 {
		t.Errorf("pause remaining = %v, want about 600", remaining)
	}
}

func TestLogsNeverHoldToken(t *testing.T) {
	t.Parallel()
	const token = "tok-9f8e7d6c5b4a-never-logged"
	e := setup(t, func(c *Config) { c.AdminToken = token })
	e.do(t, "GET", "/v1/status", "", token)
	e.do(t, "GET", "/v1/status", "", token+"-wrong")
	e.do(t, "POST", "/v1/tasks", e.task("log-1"), token)
	e.do(t, "POST", "/v1/pause", `{"for":"1m","reason":"`+token+`"}`, "wrong")
	e.do(t, "GET", "/monitoring/api/queues?token="+token, "", token)
	req, _ := http.NewRequest("GET", e.ts.URL+"/monitoring/", nil)
	req.SetBasicAuth("admin", token)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	logs := e.logs.String()
	if !strings.Contains(logs, `"component":"http"`) || !strings.Contains(logs, `"path":"/v1/status"`) {
		t.Fatalf("no access log lines captured:\n%s", logs)
	}
	if strings.Contains(logs, token) || strings.Contains(logs, "9f8e7d6c5b4a") {
		t.Fatalf("the admin token appears in the logs:\n%s", logs)
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	e.doJSON(t, "GET", "/healthz", "", "", http.StatusOK, nil)
	e.doJSON(t, "GET", "/readyz", "", "", http.StatusOK, nil)

	// A Redis that does not answer: a listener that was closed again.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	down := setup(t, func(c *Config) {
		c.Redis = newClient(addr)
		c.RedisConnOpt = asynq.RedisClientOpt{Addr: addr}
	})
	down.problem(t, "GET", "/healthz", "", "", http.StatusServiceUnavailable, CodeUnavailable)
	down.doJSON(t, "GET", "/readyz", "", "", http.StatusServiceUnavailable, nil)
}

func TestServeShutsDownOnCancel(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ctx, ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/readyz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz while serving: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve returned %v after cancel", err)
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/readyz"); err == nil {
		t.Fatal("still accepting connections after shutdown")
	}
	// The handler itself now reports not ready.
	e.doJSON(t, "GET", "/readyz", "", "", http.StatusServiceUnavailable, nil)
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no redis", Config{RedisConnOpt: asynq.RedisClientOpt{}}, "Redis is required"},
		{"no conn opt", Config{Redis: newClient("127.0.0.1:1")}, "RedisConnOpt is required"},
		{"tiny body", Config{Redis: newClient("127.0.0.1:1"), RedisConnOpt: asynq.RedisClientOpt{}, MaxBody: 10}, "MaxBody"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
