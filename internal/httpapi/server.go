package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log"
	"net"
	"net/http"
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
}

// New builds a Server and registers its metrics collectors.
func New(cfg Config) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With().Str("component", "http").Logger()}
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

// Serve serves on ln until ctx ends, then stops accepting, fails /readyz, and
// waits up to Config.ShutdownTimeout for requests in flight. It returns nil
// after a clean shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          log.New(s.log, "", 0),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	s.log.Info().Str("addr", ln.Addr().String()).Bool("auth", s.tokenHash != nil).
		Bool("read_only", s.cfg.ReadOnly).Msg("serving")
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

// routes wires every path to its handler behind the right middleware.
func (s *Server) routes(metricsHandler http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/healthz", methods{http.MethodGet: s.handleHealth})
	mux.Handle("/readyz", methods{http.MethodGet: s.handleReady})
	mux.Handle("/metrics", methods{http.MethodGet: metricsHandler.ServeHTTP})

	mux.Handle(MonitoringPath+"/", s.guard(s.mon))
	mux.Handle("/v1/tasks", s.guard(methods{http.MethodPost: s.handleEnqueue}))
	mux.Handle("/v1/tasks/{id}", s.guard(methods{http.MethodGet: s.handleGetTask}))
	mux.Handle("/v1/pause", s.guard(methods{http.MethodPost: s.handlePause}))
	mux.Handle("/v1/resume", s.guard(methods{http.MethodPost: s.handleResume}))
	mux.Handle("/v1/status", s.guard(methods{http.MethodGet: s.handleStatus}))
	mux.Handle("/v1/tenants", s.guard(methods{http.MethodGet: s.handleListTenants}))
	mux.Handle("/v1/tenants/{tenant}", s.guard(methods{http.MethodPut: s.handleSetTenant, http.MethodDelete: s.handleDeleteTenant}))
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path, "")
	}))
	return s.accessLog(mux)
}

// guard applies, in order: the admin token, read-only mode and the body limit.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			if strings.HasPrefix(r.URL.Path, MonitoringPath) {
				w.Header().Set("WWW-Authenticate", `Basic realm="promptq", charset="UTF-8"`)
			} else {
				w.Header().Set("WWW-Authenticate", `Bearer realm="promptq"`)
			}
			writeError(w, http.StatusUnauthorized, "missing or wrong admin token (Authorization: Bearer <token>)", "")
			return
		}
		if s.cfg.ReadOnly && r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, http.StatusForbidden, "the server is read-only", "")
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
		}
		next.ServeHTTP(w, r)
	})
}

// authorized compares the request's token with the admin token in constant
// time (hashing both first, so that not even the length leaks). The token
// comes from "Authorization: Bearer" or, for browsers, basic auth's password.
func (s *Server) authorized(r *http.Request) bool {
	if s.tokenHash == nil {
		return true
	}
	var given string
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		given = strings.TrimSpace(tok)
	} else if _, pw, ok := r.BasicAuth(); ok {
		given = pw
	}
	if given == "" {
		return false
	}
	h := sha256.Sum256([]byte(given))
	return subtle.ConstantTimeCompare(h[:], s.tokenHash[:]) == 1
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
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed", "")
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
		case r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || r.URL.Path == "/metrics":
			ev = s.log.Debug() // probes and scrapes would drown the rest
		default:
			ev = s.log.Info()
		}
		ev.Str("method", r.Method).Str("path", r.URL.Path).Int("status", rw.status).
			Int64("bytes", rw.bytes).Dur("duration", time.Since(start)).Str("remote", r.RemoteAddr).Msg("request")
	})
}

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
