package worker

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/promptq/promptq/internal/metrics"
)

// OpsHandler is a worker's own small HTTP surface (--ops-addr): /healthz
// answers 200 while Redis answers PING (503 otherwise), and /metrics exports
// the promptq series of the worker's account from a registry of its own.
func OpsHandler(rdb redis.UniversalClient, account string) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	col, err := metrics.NewCollector(metrics.Config{
		Redis:    rdb,
		Accounts: func(context.Context) ([]string, error) { return []string{account}, nil },
	})
	if err != nil {
		return nil, err
	}
	if err := reg.Register(col); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "application/json")
		if err := rdb.Ping(ctx).Err(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"redis unreachable"}`))
			return
		}
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	return mux, nil
}

// ServeOps serves OpsHandler on addr until ctx ends.
func ServeOps(ctx context.Context, addr string, rdb redis.UniversalClient, account string, log zerolog.Logger) error {
	h, err := OpsHandler(rdb, account)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info().Str("component", "ops").Str("addr", ln.Addr().String()).Msg("serving /healthz and /metrics")
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
