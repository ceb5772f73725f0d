package httpapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/promptq/promptq/internal/clock"
	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/tasks"
)

// Defaults and limits of Config.
const (
	// MaxBodyDefault is the largest request body accepted (10 MiB).
	MaxBodyDefault int64 = 10 << 20
	// MaxBodyMin is the smallest MaxBody accepted (one task must fit).
	MaxBodyMin int64 = 1 << 10
	// MonitoringPath is where asynqmon is mounted.
	MonitoringPath = "/monitoring"
	// ShutdownTimeoutDefault is how long requests may drain after ctx ends.
	ShutdownTimeoutDefault = 10 * time.Second
	// PingTimeoutDefault bounds the Redis PING of /healthz and /readyz.
	PingTimeoutDefault = 2 * time.Second
	// ReadTimeoutDefault bounds reading one request, body included.
	ReadTimeoutDefault = 30 * time.Second
	// WriteTimeoutDefault bounds one request from the end of its headers to
	// the end of the response.
	WriteTimeoutDefault = 60 * time.Second
	// IdleTimeoutDefault is how long a keep-alive connection may wait for
	// its next request.
	IdleTimeoutDefault = 2 * time.Minute
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout = 10 * time.Second
	// MaxClientRequestsDefault is how many requests one client address may
	// have in flight at once.
	MaxClientRequestsDefault = 16
)

// Config configures a Server.
type Config struct {
	// Redis is the client for pause, quota and health checks (required).
	Redis redis.UniversalClient
	// RedisConnOpt is the same Redis for asynq's client, inspector and
	// asynqmon (required).
	RedisConnOpt asynq.RedisConnOpt
	// AdminToken, when set, is required as a bearer token on /v1/* and
	// /metrics, and on /monitoring/* as a bearer token or as the password of
	// HTTP basic auth (for browsers). Default "" (no authentication: Serve
	// then refuses a listener that is not on loopback).
	AdminToken string
	// MetricsPublic serves /metrics without the admin token. Default false.
	MetricsPublic bool
	// AllowedHosts are the Host header values (host names or addresses,
	// without port) accepted. Default: without an AdminToken, the bound
	// address, localhost, 127.0.0.1 and ::1 (so a DNS-rebinding page is
	// refused); with one, any host.
	AllowedHosts []string
	// AllowedOrigins are origins ("https://admin.example.com") besides the
	// server's own from which browsers may send state-changing requests.
	// Default none.
	AllowedOrigins []string
	// MaxClientRequests is how many requests one client address may have in
	// flight; more get 429. Default MaxClientRequestsDefault.
	MaxClientRequests int
	// ReadTimeout, WriteTimeout and IdleTimeout are the http.Server's.
	// Defaults ReadTimeoutDefault, WriteTimeoutDefault, IdleTimeoutDefault.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// ReadOnly refuses every method but GET and HEAD with 403 and makes
	// asynqmon read-only. Default false.
	ReadOnly bool
	// MaxBody is the largest request body in bytes. Default MaxBodyDefault;
	// at least MaxBodyMin.
	MaxBody int64
	// Accounts lists the accounts that pause/resume without an account, the
	// status report and the metrics cover. Default: every account that has
	// run a worker.
	Accounts func(ctx context.Context) ([]string, error)
	// TaskOptions are the asynq options of enqueued tasks (retention, max
	// retry, timeout). Default: tasks' defaults.
	TaskOptions tasks.Options
	// Registry receives the metrics collectors. Default: a new registry with
	// the Go and process collectors besides promptq's.
	Registry *prometheus.Registry
	// Logger receives access and error logs, tagged component=http. Default:
	// zerolog.Nop().
	Logger zerolog.Logger
	// Clock turns a pause's "for" into an end time. Default clock.Real.
	Clock clock.Clock
	// ShutdownTimeout is how long requests in flight may finish after ctx
	// ends. Default ShutdownTimeoutDefault.
	ShutdownTimeout time.Duration
}

// WithDefaults fills zero fields with their defaults.
func (c Config) WithDefaults() Config {
	c.MaxBody = cmp.Or(c.MaxBody, MaxBodyDefault)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, ShutdownTimeoutDefault)
	c.MaxClientRequests = cmp.Or(c.MaxClientRequests, MaxClientRequestsDefault)
	c.ReadTimeout = cmp.Or(c.ReadTimeout, ReadTimeoutDefault)
	c.WriteTimeout = cmp.Or(c.WriteTimeout, WriteTimeoutDefault)
	c.IdleTimeout = cmp.Or(c.IdleTimeout, IdleTimeoutDefault)
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Accounts == nil && c.Redis != nil {
		rdb := c.Redis
		c.Accounts = func(ctx context.Context) ([]string, error) { return pausegate.Accounts(ctx, rdb) }
	}
	return c
}

// Validate reports a missing or out-of-range field.
func (c Config) Validate() error {
	switch {
	case c.Redis == nil:
		return errors.New("httpapi: Config.Redis is required")
	case c.RedisConnOpt == nil:
		return errors.New("httpapi: Config.RedisConnOpt is required")
	case c.MaxBody < MaxBodyMin:
		return fmt.Errorf("httpapi: Config.MaxBody must be at least %d bytes, got %d", MaxBodyMin, c.MaxBody)
	case c.ShutdownTimeout < 0:
		return fmt.Errorf("httpapi: Config.ShutdownTimeout must be positive, got %v", c.ShutdownTimeout)
	case c.MaxClientRequests < 1 || c.MaxClientRequests > 10000:
		return fmt.Errorf("httpapi: Config.MaxClientRequests must be between 1 and 10000, got %d", c.MaxClientRequests)
	case c.ReadTimeout < 0 || c.WriteTimeout < 0 || c.IdleTimeout < 0:
		return errors.New("httpapi: Config.ReadTimeout, WriteTimeout and IdleTimeout must be positive")
	}
	for _, o := range c.AllowedOrigins {
		if err := http.NewCrossOriginProtection().AddTrustedOrigin(o); err != nil {
			return fmt.Errorf("httpapi: Config.AllowedOrigins: %q must be scheme://host[:port], got %v", o, err)
		}
	}
	for _, h := range c.AllowedHosts {
		if h == "" || strings.ContainsAny(h, "/ ") {
			return fmt.Errorf("httpapi: Config.AllowedHosts: %q is not a host name or address", h)
		}
	}
	return nil
}
