package worker

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/promptq/promptq/internal/metrics"
)

// OpsRegistry returns a registry of this worker process's own series: m
// (may be nil), promptq_build_info, and the Go runtime and process
// collectors. It holds nothing read from Redis: the cluster-wide quota and
// queue series are `promptq serve`'s, so summing a worker series over pods
// counts each request once.
func OpsRegistry(m *Metrics) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	cs := []prometheus.Collector{metrics.NewBuildInfo(), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})}
	if m != nil {
		cs = append(cs, m)
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return reg, nil
}

// OpsHandler is a worker's own small HTTP surface (--ops-addr): /healthz
// answers 200 while Redis answers PING (503 otherwise), and /metrics
// exports g (OpsRegistry: this process's own series).
func OpsHandler(rdb redis.UniversalClient, g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
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
	return mux
}

// ServeOps serves OpsHandler on addr until ctx ends.
func ServeOps(ctx context.Context, addr string, rdb redis.UniversalClient, g prometheus.Gatherer, log zerolog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: OpsHandler(rdb, g), ReadHeaderTimeout: 10 * time.Second}
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
