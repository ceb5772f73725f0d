package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/promptq/promptq/internal/config"
	"github.com/promptq/promptq/internal/httpapi"
	"github.com/promptq/promptq/tasks"
)

const serveAddrDefault = "127.0.0.1:8080"

func runServe(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var (
		c              common
		addr           string
		token          string
		readOnly       bool
		maxBody        int64
		retention      time.Duration
		maxRetry       int
		metricsPublic  bool
		allowedHosts   string
		allowedOrigins string
		maxClient      int
		readTimeout    time.Duration
		writeTimeout   time.Duration
		idleTimeout    time.Duration
	)
	f := config.New("serve", "Serve HTTP for operators and producers: asynqmon at /monitoring/, Prometheus at /metrics,\n"+
		"/healthz, /readyz, the OpenAPI document at /openapi.json and the JSON API under /v1\n"+
		"(tasks, pause, resume, status, tenants; the account as ?account=).\n"+
		"With --admin-token, /v1/* and /metrics need 'Authorization: Bearer <token>'; the dashboard\n"+
		"/monitoring/ also takes basic auth (any user, the token as password). Without a token serve\n"+
		"listens only on loopback and accepts only Host localhost/127.0.0.1/::1/the bound address.\n"+
		"POST and PUT need 'Content-Type: application/json'; cross-origin browser requests that change\n"+
		"state are refused. Errors are RFC 9457 application/problem+json with a stable \"code\".", stdout)
	c.register(f, false)
	f.String(&addr, "addr", "PROMPTQ_SERVE_ADDR", serveAddrDefault, "host:port to listen on")
	f.String(&token, "admin-token", "PROMPTQ_ADMIN_TOKEN", "", "bearer token required on /v1/*, /metrics and /monitoring/* (prefer the env variable: flags show in ps); without it serve only listens on loopback")
	f.Bool(&metricsPublic, "metrics-public", "PROMPTQ_METRICS_PUBLIC", false, "serve /metrics without the admin token (it names every account)")
	f.String(&allowedHosts, "allowed-hosts", "PROMPTQ_ALLOWED_HOSTS", "", "comma-separated Host names accepted (default without a token: localhost, 127.0.0.1, ::1 and the bound address; with one: any)")
	f.String(&allowedOrigins, "allowed-origins", "PROMPTQ_ALLOWED_ORIGINS", "", "comma-separated origins (https://ops.example.com) whose browser pages may send state-changing requests besides serve's own")
	f.Int(&maxClient, "max-client-requests", "PROMPTQ_MAX_CLIENT_REQUESTS", httpapi.MaxClientRequestsDefault, "requests one client address may have in flight; more get 429 (1-10000)")
	f.Duration(&readTimeout, "read-timeout", "PROMPTQ_READ_TIMEOUT", httpapi.ReadTimeoutDefault, "time to read a whole request, body included")
	f.Duration(&writeTimeout, "write-timeout", "PROMPTQ_WRITE_TIMEOUT", httpapi.WriteTimeoutDefault, "time from the end of a request's headers to the end of its response")
	f.Duration(&idleTimeout, "idle-timeout", "PROMPTQ_IDLE_TIMEOUT", httpapi.IdleTimeoutDefault, "time a keep-alive connection may wait for its next request")
	f.Bool(&readOnly, "read-only", "PROMPTQ_READ_ONLY", false, "refuse every change (POST, DELETE...) with 403; asynqmon is view-only")
	f.Int64(&maxBody, "max-body", "PROMPTQ_MAX_BODY", httpapi.MaxBodyDefault, "largest request body in bytes")
	f.Duration(&retention, "retention", "RESULT_RETENTION", tasks.RetentionDefault, "how long results of tasks enqueued here are kept after they finish")
	f.Int(&maxRetry, "max-retry", "MAX_RETRY", tasks.MaxRetryDefault, "real failures a task enqueued here may have before it is archived")
	if err := f.Parse(args); err != nil {
		return err
	}
	switch {
	case maxBody < httpapi.MaxBodyMin:
		return fmt.Errorf("--max-body / PROMPTQ_MAX_BODY must be at least %d, got %d", httpapi.MaxBodyMin, maxBody)
	case retention < time.Minute:
		return fmt.Errorf("--retention / RESULT_RETENTION must be at least 1m, got %v", retention)
	case maxRetry < 0 || maxRetry > 1000:
		return fmt.Errorf("--max-retry / MAX_RETRY must be between 0 and 1000, got %d", maxRetry)
	case maxClient < 1 || maxClient > 10000:
		return fmt.Errorf("--max-client-requests / PROMPTQ_MAX_CLIENT_REQUESTS must be between 1 and 10000, got %d", maxClient)
	case readTimeout <= 0 || writeTimeout <= 0 || idleTimeout <= 0:
		return errors.New("--read-timeout, --write-timeout and --idle-timeout (PROMPTQ_READ_TIMEOUT, PROMPTQ_WRITE_TIMEOUT, PROMPTQ_IDLE_TIMEOUT) must be positive")
	}
	if token == "" && !loopbackAddr(addr) {
		return fmt.Errorf("--addr / PROMPTQ_SERVE_ADDR %s is not a loopback address: set --admin-token / PROMPTQ_ADMIN_TOKEN, or listen on 127.0.0.1", addr)
	}
	log := c.logger(stderr)
	rdb, aopt, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	opts := tasks.Options{Retention: retention, MaxRetry: maxRetry}
	if maxRetry == 0 {
		opts.MaxRetry = -1
	}
	srv, err := httpapi.New(httpapi.Config{
		Redis:        rdb,
		RedisConnOpt: aopt,
		AdminToken:   token,
		ReadOnly:     readOnly,
		MaxBody:      maxBody,
		Accounts:     func(ctx context.Context) ([]string, error) { return accountsFor(ctx, rdb, "") },
		TaskOptions:  opts,
		Logger:       log,

		MetricsPublic:     metricsPublic,
		AllowedHosts:      splitList(allowedHosts),
		AllowedOrigins:    splitList(allowedOrigins),
		MaxClientRequests: maxClient,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	if token == "" {
		log.Warn().Str("component", "http").Str("addr", addr).Msg("no --admin-token / PROMPTQ_ADMIN_TOKEN: /v1/* and /monitoring/* are open to every local user")
	}
	return srv.ListenAndServe(ctx, addr)
}

// loopbackAddr reports whether host:port names only loopback: 127.0.0.0/8,
// ::1 or localhost. An empty host (all interfaces) is not loopback.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
