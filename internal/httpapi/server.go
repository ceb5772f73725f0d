package httpapi

import (
	"context"
	"crypto/sha256"
	"errors"
	"log"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/promptq/promptq/internal/metrics"
	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/quota"
	"github.com/promptq/promptq/tasks"
)

// SetBy is how pauses made through the API are attributed in status.
const SetBy = "http-api"

// Server is promptq's HTTP server. Create it with New, serve with Serve or
// ListenAndServe, release it with Close.
type Server struct {
	cfg       Config
	log       zerolog.Logger
	insp      *asynq.Inspector
	client    *asynq.Client
	enq       *tasks.Enqueuer
	gate      *pausegate.Gate
	lim       *quota.Limiter // tenant budgets; built without the workers' limits, so never Reserve with it
	mon       *asynqmon.HTTPHandler
	tokenHash *[sha256.Size]byte // nil without an admin token
	handler   http.Handler
	draining  atomic.Bool
	clients   *clientLimiter
	cop       *http.CrossOriginProtection
	boundHost atomic.Pointer[string] // the listener's IP, set by Serve: an allowed Host
}

// New builds a Server and registers its metrics collectors.
func New(cfg Config) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With().Str("component", "http").Logger(),
		clients: newClientLimiter(cfg.MaxClientRequests), cop: http.NewCrossOriginProtection()}
	for _, o := range cfg.AllowedOrigins {
		_ = s.cop.AddTrustedOrigin(o) // checked by Validate
	}
	if cfg.AdminToken != "" {
		h := sha256.Sum256([]byte(cfg.AdminToken))
		s.tokenHash = &h
	}
	s.insp = asynq.NewInspector(cfg.RedisConnOpt)
	s.client = asynq.NewClient(cfg.RedisConnOpt)
	s.enq = &tasks.Enqueuer{Client: s.client, Opts: cfg.TaskOptions}
	gate, err := pausegate.New(cfg.Redis, pausegate.Config{
		Clock: cfg.Clock, Logger: cfg.Logger, Queues: s.insp, SetBy: SetBy,
		ShortPause: time.Nanosecond, // like `promptq pause`: any pause also pauses the queues
	})
	if err != nil {
		s.Close()
		return nil, err
	}
	s.gate = gate
	if s.lim, err = quota.New(cfg.Redis, quota.Config{Clock: cfg.Clock}); err != nil {
		s.Close()
		return nil, err
	}
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	pc, err := metrics.NewCollector(metrics.Config{Redis: cfg.Redis, Accounts: cfg.Accounts, Clock: cfg.Clock})
	if err != nil {
		s.Close()
		return nil, err
	}
	if err := reg.Register(pc); err != nil {
		s.Close()
		return nil, err
	}
	if err := reg.Register(metrics.NewBuildInfo()); err != nil {
		s.Close()
		return nil, err
	}
	if err := reg.Register(metrics.NewQueueCollector(s.insp)); err != nil {
		s.Close()
		return nil, err
	}
	s.mon = asynqmon.New(asynqmon.Options{RootPath: MonitoringPath, RedisConnOpt: cfg.RedisConnOpt, ReadOnly: cfg.ReadOnly})
	s.handler = s.routes(promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      log.New(s.log, "metrics: ", 0),
	}))
	return s, nil
}

// Handler returns the server's root handler, for tests or for mounting in
// another server.
func (s *Server) Handler() http.Handler { return s.handler }

// Close releases the asynq connections. Call it after serving has ended.
func (s *Server) Close() error {
	var errs []error
	if s.mon != nil {
		errs = append(errs, s.mon.Close())
	}
	if s.client != nil {
		errs = append(errs, s.client.Close())
	}
	if s.insp != nil {
		errs = append(errs, s.insp.Close())
	}
	return errors.Join(errs...)
}

// ListenAndServe listens on addr and serves until ctx ends (see Serve).
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// ErrNoTokenOffLoopback is returned by Serve for a listener that is not on
// loopback when no admin token is configured.
var ErrNoTokenOffLoopback = errors.New("httpapi: refusing to serve without an admin token on an address that is not loopback; set PROMPTQ_ADMIN_TOKEN or listen on 127.0.0.1")

// Serve serves on ln until ctx ends, then stops accepting, fails /readyz, and
// waits up to Config.ShutdownTimeout for requests in flight. It returns nil
// after a clean shutdown. Without an admin token it refuses (and closes) a
// listener that is not on loopback: ErrNoTokenOffLoopback.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok {
		if s.tokenHash == nil && !tcp.IP.IsLoopback() {
			ln.Close()
			return ErrNoTokenOffLoopback
		}
		host := tcp.IP.String()
		s.boundHost.Store(&host)
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: min(ReadHeaderTimeout, s.cfg.ReadTimeout),
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          log.New(s.log, "", 0),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	s.log.Info().Str("addr", ln.Addr().String()).Bool("auth", s.tokenHash != nil).
		Bool("read_only", s.cfg.ReadOnly).Bool("metrics_public", s.cfg.MetricsPublic).Msg("serving")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.draining.Store(true)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	s.log.Info().Msg("stopped")
	return err
}

// route is one method and path of the API, as the OpenAPI document lists it.
type route struct {
	method, pattern string
	auth            authKind
	api             bool // under /v1: read-only mode and the JSON Content-Type apply
	h               http.HandlerFunc
}

// apiRoutes lists every documented route. The mux is built from it and the
// OpenAPI test checks the document against it, so a route cannot be added
// without documenting it.
func (s *Server) apiRoutes(metricsHandler http.Handler) []route {
	metricsAuth := authBearer
	if s.cfg.MetricsPublic {
		metricsAuth = authNone
	}
	return []route{
		{http.MethodGet, "/healthz", authNone, false, s.handleHealth},
		{http.MethodGet, "/readyz", authNone, false, s.handleReady},
		{http.MethodGet, "/openapi.json", authNone, false, handleOpenAPI},
		{http.MethodGet, "/metrics", metricsAuth, false, metricsHandler.ServeHTTP},
		{http.MethodPost, "/v1/tasks", authBearer, true, s.handleEnqueue},
		{http.MethodGet, "/v1/tasks/{id}", authBearer, true, s.handleGetTask},
		{http.MethodPost, "/v1/pause", authBearer, true, s.handlePause},
		{http.MethodPost, "/v1/resume", authBearer, true, s.handleResume},
		{http.MethodGet, "/v1/status", authBearer, true, s.handleStatus},
		{http.MethodGet, "/v1/quota", authBearer, true, s.handleQuota},
		{http.MethodGet, "/v1/tenants", authBearer, true, s.handleListTenants},
		{http.MethodGet, "/v1/tenants/{tenant}", authBearer, true, s.handleGetTenant},
		{http.MethodPut, "/v1/tenants/{tenant}", authBearer, true, s.handleSetTenant},
		{http.MethodDelete, "/v1/tenants/{tenant}", authBearer, true, s.handleDeleteTenant},
	}
}

// routes wires every path to its handler behind the right middleware.
func (s *Server) routes(metricsHandler http.Handler) http.Handler {
	mux := http.NewServeMux()
	byPath := map[string]methods{}
	var order []string
	for _, rt := range s.apiRoutes(metricsHandler) {
		if byPath[rt.pattern] == nil {
			byPath[rt.pattern] = methods{}
			order = append(order, rt.pattern)
		}
		byPath[rt.pattern][rt.method] = s.guard(rt.auth, rt.api, rt.h).ServeHTTP
	}
	for _, p := range order {
		mux.Handle(p, byPath[p])
	}
	mux.Handle(MonitoringPath+"/", s.guard(authUI, false, withQuotaLink(s.mon)))
	mux.Handle(QuotaPath+"/", s.guard(authUI, false, quotaPage()))
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fail(w, http.StatusNotFound, CodeNotFound, "no such endpoint: "+r.URL.Path, "")
	}))
	return s.accessLog(s.protect(mux))
}

// methods routes a path by method and answers others with a JSON 405.
type methods map[string]http.HandlerFunc

func (m methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, ok := m[r.Method]
	if !ok && r.Method == http.MethodHead {
		h, ok = m[http.MethodGet]
	}
	if !ok {
		allow := make([]string, 0, len(m))
		for k := range m {
			allow = append(allow, k)
		}
		sort.Strings(allow)
		w.Header().Set("Allow", strings.Join(allow, ", "))
		fail(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method "+r.Method+" is not allowed here", "")
		return
	}
	h(w, r)
}

// accessLog logs one line per request: method, path, status, size and
// duration. Never headers (the token), the query or bodies.
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rw, r)
		var ev *zerolog.Event
		switch {
		case rw.status >= 500:
			ev = s.log.Warn()
		case r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || r.URL.Path == "/metrics",
			r.Method == http.MethodGet && (strings.HasPrefix(r.URL.Path, MonitoringPath+"/api/") || strings.HasPrefix(r.URL.Path, QuotaPath+"/api/")):
			ev = s.log.Debug() // probes, scrapes and dashboards polling every second would drown the rest
		default:
			ev = s.log.Info()
		}
		ev.Str("method", r.Method).Str("path", r.URL.Path).Int("status", rw.status).
			Int64("bytes", rw.bytes).Float64("duration_ms", ms(time.Since(start))).Str("remote", r.RemoteAddr).Msg("request")
	})
}

// ms is d in milliseconds, for log fields named *_ms.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// statusWriter records the status code and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
