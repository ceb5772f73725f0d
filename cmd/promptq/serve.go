package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/promptq/promptq/internal/config"
	"github.com/promptq/promptq/internal/httpapi"
	"github.com/promptq/promptq/tasks"
)

const serveAddrDefault = "127.0.0.1:8080"

func runServe(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var (
		c         common
		addr      string
		token     string
		readOnly  bool
		maxBody   int64
		retention time.Duration
		maxRetry  int
	)
	f := config.New("serve", "Serve HTTP for operators and producers: asynqmon at /monitoring/, Prometheus at /metrics,\n"+
		"/healthz and /readyz, and the JSON API POST /v1/tasks, GET /v1/tasks/{id}?queue=Q, POST /v1/pause,\n"+
		"POST /v1/resume, GET /v1/status. With --admin-token, /v1/* and /monitoring/* need\n"+
		"'Authorization: Bearer <token>' (browsers: basic auth, any user, the token as password).", stdout)
	c.register(f, false)
	f.String(&addr, "addr", "PROMPTQ_SERVE_ADDR", serveAddrDefault, "host:port to listen on")
	f.String(&token, "admin-token", "PROMPTQ_ADMIN_TOKEN", "", "bearer token required on /v1/* and /monitoring/* (prefer the env variable: flags show in ps)")
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
	}
	log := c.logger(stderr)
	rdb, aopt, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	opts := tasks.TaskOptions{Retention: retention, MaxRetry: maxRetry}
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
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	if token == "" {
		log.Warn().Str("component", "http").Msg("no --admin-token / PROMPTQ_ADMIN_TOKEN: /v1/* and /monitoring/* are open to anyone who can reach " + addr)
	}
	return srv.ListenAndServe(ctx, addr)
}
