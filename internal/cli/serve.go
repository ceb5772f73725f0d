package cli

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

// serveFlags are the flags of `promptq serve`.
type serveFlags struct {
	common
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
}

func (s *serveFlags) register(f *config.Flags) {
	s.common.register(f, false)
	f.String(&s.addr, "addr", "PROMPTQ_SERVE_ADDR", serveAddrDefault, "host:port to listen on")
	f.String(&s.token, "admin-token", "PROMPTQ_ADMIN_TOKEN", "", "bearer token required on /v1/*, /metrics and /monitoring/* (prefer the env variable: flags show in ps); without it serve only listens on loopback")
	f.Bool(&s.metricsPublic, "metrics-public", "PROMPTQ_METRICS_PUBLIC", false, "serve /metrics without the admin token (it names every account)")
	f.String(&s.allowedHosts, "allowed-hosts", "PROMPTQ_ALLOWED_HOSTS", "", "comma-separated Host names accepted (default without a token: localhost, 127.0.0.1, ::1 and the bound address; with one: any)")
	f.String(&s.allowedOrigins, "allowed-origins", "PROMPTQ_ALLOWED_ORIGINS", "", "comma-separated origins (https://ops.example.com) whose browser pages may send state-changing requests besides serve's own")
	f.Int(&s.maxClient, "max-client-requests", "PROMPTQ_MAX_CLIENT_REQUESTS", httpapi.MaxClientRequestsDefault, "requests one client address may have in flight; more get 429 (1-10000)")
	f.Duration(&s.readTimeout, "read-timeout", "PROMPTQ_READ_TIMEOUT", httpapi.ReadTimeoutDefault, "time to read a whole request, body included")
	f.Duration(&s.writeTimeout, "write-timeout", "PROMPTQ_WRITE_TIMEOUT", httpapi.WriteTimeoutDefault, "time from the end of a request's headers to the end of its response")
	f.Duration(&s.idleTimeout, "idle-timeout", "PROMPTQ_IDLE_TIMEOUT", httpapi.IdleTimeoutDefault, "time a keep-alive connection may wait for its next request")
	f.Bool(&s.readOnly, "read-only", "PROMPTQ_READ_ONLY", false, "refuse every change (POST, DELETE...) with 403; asynqmon is view-only")
	f.Int64(&s.maxBody, "max-body", "PROMPTQ_MAX_BODY", httpapi.MaxBodyDefault, "largest request body in bytes")
	f.Duration(&s.retention, "retention", "RESULT_RETENTION", tasks.RetentionDefault, "how long results of tasks enqueued here are kept after they finish")
	f.Int(&s.maxRetry, "max-retry", "MAX_RETRY", tasks.MaxRetryDefault, "real failures a task enqueued here may have before it is archived")
}

// validate checks ranges; each message names the flag, its env and the range.
func (s *serveFlags) validate() error {
	switch {
	case s.maxBody < httpapi.MaxBodyMin:
		return fmt.Errorf("--max-body / PROMPTQ_MAX_BODY must be at least %d, got %d", httpapi.MaxBodyMin, s.maxBody)
	case s.retention < time.Minute:
		return fmt.Errorf("--retention / RESULT_RETENTION must be at least 1m, got %v", s.retention)
	case s.maxRetry < 0 || s.maxRetry > 1000:
		return fmt.Errorf("--max-retry / MAX_RETRY must be between 0 and 1000, got %d", s.maxRetry)
	case s.maxClient < 1 || s.maxClient > 10000:
		return fmt.Errorf("--max-client-requests / PROMPTQ_MAX_CLIENT_REQUESTS must be between 1 and 10000, got %d", s.maxClient)
	case s.readTimeout <= 0 || s.writeTimeout <= 0 || s.idleTimeout <= 0:
		return errors.New("--read-timeout, --write-timeout and --idle-timeout (PROMPTQ_READ_TIMEOUT, PROMPTQ_WRITE_TIMEOUT, PROMPTQ_IDLE_TIMEOUT) must be positive")
	case s.token == "" && !loopbackAddr(s.addr):
		return fmt.Errorf("--addr / PROMPTQ_SERVE_ADDR %s is not a loopback address: set --admin-token / PROMPTQ_ADMIN_TOKEN, or listen on 127.0.0.1", s.addr)
	}
	return nil
}

func runServe(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var s serveFlags
	f := config.New("serve", "Serve HTTP for operators and producers: asynqmon at /monitoring/, Prometheus at /metrics,\n"+
		"/healthz, /readyz, the OpenAPI document at /openapi.json and the JSON API under /v1\n"+
		"(tasks, pause, resume, status, tenants; the account as ?account=).\n"+
		"With --admin-token, /v1/* and /metrics need 'Authorization: Bearer <token>'; the dashboard\n"+
		"/monitoring/ also takes basic auth (any user, the token as password). Without a token serve\n"+
		"listens only on loopback and accepts only Host localhost/127.0.0.1/::1/the bound address.\n"+
		"POST and PUT need 'Content-Type: application/json'; cross-origin browser requests that change\n"+
		"state are refused. Errors are RFC 9457 application/problem+json with a stable \"code\".", stdout)
	s.register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	if err := s.validate(); err != nil {
		return err
	}
	log := s.logger(stderr)
	rdb, aopt, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	srv, err := httpapi.New(httpapi.Config{
		Redis:        rdb,
		RedisConnOpt: aopt,
		AdminToken:   s.token,
		ReadOnly:     s.readOnly,
		MaxBody:      s.maxBody,
		Accounts:     func(ctx context.Context) ([]string, error) { return accountsFor(ctx, rdb, "") },
		TaskOptions:  taskOptions(s.retention, s.maxRetry, 0),
		Logger:       log,

		MetricsPublic:     s.metricsPublic,
		AllowedHosts:      splitList(s.allowedHosts),
		AllowedOrigins:    splitList(s.allowedOrigins),
		MaxClientRequests: s.maxClient,
		ReadTimeout:       s.readTimeout,
		WriteTimeout:      s.writeTimeout,
		IdleTimeout:       s.idleTimeout,
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	if s.token == "" {
		log.Warn().Str("component", "http").Str("addr", s.addr).Msg("no --admin-token / PROMPTQ_ADMIN_TOKEN: /v1/* and /monitoring/* are open to every local user")
	}
	return srv.ListenAndServe(ctx, s.addr)
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
