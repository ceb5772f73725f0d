package httpapi

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/promptq/promptq/pausegate"
)

// browserPost builds a POST as a browser sends it: from a page on origin,
// with a form's text/plain body, Sec-Fetch-Site as the browser computes it.
func (e *env) browserPost(t *testing.T, path, origin, site, contentType, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("POST", e.ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if site != "" {
		req.Header.Set("Sec-Fetch-Site", site)
	}
	req.Header.Set("Content-Type", contentType)
	return req
}

func (e *env) paused(t *testing.T) bool {
	t.Helper()
	gate, err := pausegate.New(e.r.Client, pausegate.Config{})
	if err != nil {
		t.Fatal(err)
	}
	_, active, err := gate.Check(context.Background(), e.account)
	if err != nil {
		t.Fatal(err)
	}
	return active
}

func expectProblem(t *testing.T, what string, code int, body []byte, wantStatus int, wantCode string) {
	t.Helper()
	if code != wantStatus || !strings.Contains(string(body), `"code": "`+wantCode+`"`) {
		t.Fatalf("%s: %d %s, want %d %s", what, code, body, wantStatus, wantCode)
	}
}

// Without a token, a page on another site must not drive a serve on
// localhost: a form POST (text/plain, no preflight) and a fetch from another
// origin are both refused, and nothing is paused or enqueued.
func TestCrossSiteRequestsRefused(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	task := `{"model":"m","input":"hi","max_output_tokens":1000000,"queue":"` + e.queue + `"}`
	for _, tc := range []struct {
		name, path, origin, site, ctype, body string
		wantStatus                            int
		wantCode                              string
	}{
		// <form method=post enctype=text/plain action=http://127.0.0.1:8080/v1/pause>
		{"form pause", "/v1/pause?account=" + e.account, "https://evil.example", "cross-site", "text/plain", `{"for":"1h"}`, http.StatusForbidden, CodeOriginNotAllowed},
		{"form enqueue", "/v1/tasks", "https://evil.example", "cross-site", "text/plain", task, http.StatusForbidden, CodeOriginNotAllowed},
		// An older browser without Sec-Fetch-Site: Origin against Host.
		{"origin only", "/v1/pause?account=" + e.account, "https://evil.example", "", "application/json", `{}`, http.StatusForbidden, CodeOriginNotAllowed},
		// A same-origin request with a form body is still refused: JSON only.
		{"same-origin text/plain", "/v1/pause?account=" + e.account, "", "same-origin", "text/plain", `{}`, http.StatusUnsupportedMediaType, CodeUnsupportedMedia},
		{"urlencoded form", "/v1/tasks", "", "", "application/x-www-form-urlencoded", task, http.StatusUnsupportedMediaType, CodeUnsupportedMedia},
		{"no content type", "/v1/resume", "", "", "", ``, http.StatusUnsupportedMediaType, CodeUnsupportedMedia},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := e.browserPost(t, tc.path, tc.origin, tc.site, tc.ctype, tc.body)
			if tc.ctype == "" {
				req.Header.Del("Content-Type")
			}
			code, body := e.send(t, req)
			expectProblem(t, tc.name, code, body, tc.wantStatus, tc.wantCode)
		})
	}
	if e.paused(t) {
		t.Fatal("a cross-site request paused the account")
	}
	if info, err := e.srv.insp.GetQueueInfo(e.queue); err == nil && info.Pending != 0 {
		t.Fatalf("a cross-site request enqueued %d tasks", info.Pending)
	}
	// A same-origin JSON request from the server's own page works.
	req := e.browserPost(t, "/v1/pause?account="+e.account, e.ts.URL, "same-origin", "application/json", `{"for":"1m"}`)
	if code, body := e.send(t, req); code != http.StatusOK {
		t.Fatalf("same-origin pause: %d %s", code, body)
	}
	if !e.paused(t) {
		t.Fatal("same-origin pause did not pause")
	}
}

// DNS rebinding: evil.example resolves to 127.0.0.1, so the browser calls
// this server with Host: evil.example and, for its own page, a same-origin
// Origin. The Host allow-list refuses it, reads included.
func TestDNSRebindingRefused(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(e.ts.URL, "http://"))
	evil := "evil.example:" + port
	for _, m := range []struct{ method, path, body string }{
		{"POST", "/v1/pause?account=" + e.account, `{"for":"1h"}`},
		{"GET", "/v1/status", ""},
		{"GET", "/monitoring/", ""},
		{"GET", "/metrics", ""},
	} {
		req, _ := http.NewRequest(m.method, e.ts.URL+m.path, strings.NewReader(m.body))
		req.Host = evil
		req.Header.Set("Origin", "http://"+evil)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		req.Header.Set("Content-Type", "application/json")
		code, body := e.send(t, req)
		expectProblem(t, m.method+" "+m.path, code, body, http.StatusForbidden, CodeHostNotAllowed)
	}
	if e.paused(t) {
		t.Fatal("a rebinding request paused the account")
	}
	// localhost and the loopback addresses are accepted.
	for _, host := range []string{"localhost:" + port, "127.0.0.1:" + port, "[::1]:" + port, "LOCALHOST"} {
		req, _ := http.NewRequest("GET", e.ts.URL+"/v1/status", nil)
		req.Host = host
		if code, body := e.send(t, req); code != http.StatusOK {
			t.Fatalf("Host %s: %d %s", host, code, body)
		}
	}
	// A configured allow-list replaces the default.
	listed := setup(t, func(c *Config) { c.AllowedHosts = []string{"promptq.internal"} })
	req, _ := http.NewRequest("GET", listed.ts.URL+"/healthz", nil)
	req.Host = "promptq.internal:8080"
	if code, body := listed.send(t, req); code != http.StatusOK {
		t.Fatalf("listed host: %d %s", code, body)
	}
	code, body := listed.do(t, "GET", "/healthz", "", "") // Host 127.0.0.1:port, not listed
	expectProblem(t, "unlisted host", code, body, http.StatusForbidden, CodeHostNotAllowed)
}

// With a token, /v1 takes only the bearer token: Basic credentials, which a
// browser resends cross-site once the dashboard was opened, are refused.
func TestBasicAuthOnlyForDashboard(t *testing.T) {
	t.Parallel()
	const token = "dash-token-1234567890"
	e := setup(t, func(c *Config) { c.AdminToken = token })
	e.doJSON(t, "POST", "/v1/pause?account="+e.account, `{"for":"1h"}`, token, http.StatusOK, nil)
	if !e.paused(t) {
		t.Fatal("not paused")
	}
	// A page on another site posts to /v1/resume; the browser adds the
	// cached Basic credentials. Same for a same-site request with them.
	for _, site := range []string{"cross-site", "same-origin"} {
		req := e.browserPost(t, "/v1/resume?account="+e.account, "https://evil.example", site, "application/json", "")
		if site == "same-origin" {
			req.Header.Del("Origin")
		}
		req.SetBasicAuth("admin", token)
		code, body := e.send(t, req)
		if code != http.StatusUnauthorized && code != http.StatusForbidden {
			t.Fatalf("%s resume with Basic: %d %s, want 401 or 403", site, code, body)
		}
	}
	if !e.paused(t) {
		t.Fatal("a request with Basic credentials resumed the account")
	}
	// Basic alone on /v1 is 401 even without any Origin.
	req, _ := http.NewRequest("GET", e.ts.URL+"/v1/status", nil)
	req.SetBasicAuth("admin", token)
	code, body := e.send(t, req)
	expectProblem(t, "GET /v1/status with Basic", code, body, http.StatusUnauthorized, CodeUnauthorized)
	// The dashboard takes Basic.
	req, _ = http.NewRequest("GET", e.ts.URL+"/monitoring/", nil)
	req.SetBasicAuth("admin", token)
	if code, body := e.send(t, req); code != http.StatusOK {
		t.Fatalf("dashboard with Basic: %d %.200s", code, body)
	}
	// asynqmon's state-changing API with Basic from another origin: refused.
	req = e.browserPost(t, "/monitoring/api/queues/"+e.queue+":pause", "https://evil.example", "cross-site", "application/json", "")
	req.SetBasicAuth("admin", token)
	code, body = e.send(t, req)
	expectProblem(t, "cross-site asynqmon pause", code, body, http.StatusForbidden, CodeOriginNotAllowed)
	// From the dashboard's own origin it passes the check (asynqmon answers).
	req = e.browserPost(t, "/monitoring/api/queues/"+e.queue+":pause", e.ts.URL, "same-origin", "application/json", "")
	req.SetBasicAuth("admin", token)
	if code, body := e.send(t, req); code == http.StatusForbidden || code == http.StatusUnauthorized {
		t.Fatalf("same-origin asynqmon call: %d %s", code, body)
	}
	// A trusted origin is accepted.
	trusted := setup(t, func(c *Config) { c.AllowedOrigins = []string{"https://ops.example"} })
	req = trusted.browserPost(t, "/v1/pause?account="+trusted.account, "https://ops.example", "cross-site", "application/json", `{}`)
	if code, body := trusted.send(t, req); code != http.StatusOK {
		t.Fatalf("trusted origin: %d %s", code, body)
	}
}

func TestMetricsBehindToken(t *testing.T) {
	t.Parallel()
	const token = "metrics-token-abcdef"
	e := setup(t, func(c *Config) { c.AdminToken = token })
	code, body := e.do(t, "GET", "/metrics", "", "")
	expectProblem(t, "metrics without token", code, body, http.StatusUnauthorized, CodeUnauthorized)
	if strings.Contains(string(body), e.account) {
		t.Fatal("the 401 names an account")
	}
	if code, _ := e.do(t, "GET", "/metrics", "", token); code != http.StatusOK {
		t.Fatalf("metrics with token: %d", code)
	}
	public := setup(t, func(c *Config) { c.AdminToken = token; c.MetricsPublic = true })
	if code, body := public.do(t, "GET", "/metrics", "", ""); code != http.StatusOK || !strings.Contains(string(body), "promptq_") {
		t.Fatalf("--metrics-public: %d %.200s", code, body)
	}
	// The token still guards the API there.
	code, body = public.do(t, "GET", "/v1/status", "", "")
	expectProblem(t, "status with public metrics", code, body, http.StatusUnauthorized, CodeUnauthorized)
}

func TestRefusesNonLoopbackWithoutToken(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Serve(context.Background(), ln); !errors.Is(err, ErrNoTokenOffLoopback) {
		t.Fatalf("Serve on 0.0.0.0 without a token: %v, want ErrNoTokenOffLoopback", err)
	}
	if _, err := ln.Accept(); err == nil {
		t.Fatal("listener still open")
	}
	// With a token it serves.
	tok := setup(t, func(c *Config) { c.AdminToken = "tok-loopback-test" })
	ln, err = net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tok.srv.Serve(ctx, ln) }()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	resp, err := http.Get("http://127.0.0.1:" + port + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz with a token on 0.0.0.0: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A client trickling its body is cut off at ReadTimeout instead of holding
// a connection forever.
func TestSlowBodyCutOff(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.ReadTimeout = 300 * time.Millisecond })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = io.WriteString(conn, "POST /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"model\":")
	if err != nil {
		t.Fatal(err)
	}
	// Never send the rest: the server must close the connection.
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	_, err = io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection was still open after %v", time.Since(start))
	}
}

// One client may have at most MaxClientRequests requests in flight.
func TestPerClientConcurrencyBound(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.MaxClientRequests = 1 })
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", e.ts.URL+"/v1/tasks", pr)
	req.Header.Set("Content-Type", "application/json")
	first := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	deadline := time.Now().Add(10 * time.Second)
	for e.srv.clients.count("127.0.0.1") == 0 { // the first request is in the handler, reading its body
		if time.Now().After(deadline) {
			t.Fatal("the first request never arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	code, body := e.do(t, "GET", "/healthz", "", "")
	expectProblem(t, "second request", code, body, http.StatusTooManyRequests, CodeTooManyRequests)
	_, _ = io.WriteString(pw, e.task("slow-1"))
	pw.Close()
	if c := <-first; c != http.StatusAccepted {
		t.Fatalf("first request: %d", c)
	}
	if code, _ := e.do(t, "GET", "/healthz", "", ""); code != http.StatusOK {
		t.Fatalf("after the first finished: %d", code)
	}
}
