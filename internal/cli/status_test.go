package cli

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/promptq/promptq/internal/status"
)

func TestPrintStatusPaused(t *testing.T) {
	until, eta := "2026-11-27T16:00:00Z", int64(59*60_000+2000)
	rep := &statusReport{Queues: map[string]status.Queue{
		"default": {Pending: 4, Throughput: &status.Throughput{PerSecond: 2, Source: "observed", Backlog: 4, ETAMs: &eta,
			Paused: true, PausedUntil: &until, PauseReason: "insufficient_quota"}},
		"low": {Pending: 1, Paused: true, Throughput: &status.Throughput{PerSecond: 2, Source: "observed", Backlog: 1,
			Paused: true, PauseReason: "manual pause"}},
	}}
	var b bytes.Buffer
	printStatus(&b, rep)
	out := b.String()
	for _, want := range []string{
		"59m2s (paused)",
		"queue default: paused until 2026-11-27T16:00:00Z (insufficient_quota); the ETA includes the pause",
		"queue low: paused until resumed (manual pause): no ETA",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
}

func TestProbe(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer ok.Close()
	var out bytes.Buffer
	if err := runProbe(context.Background(), []string{"--url", ok.URL + "/healthz"}, nil, &out, &out); err != nil {
		t.Fatalf("probe of a healthy endpoint: %v", err)
	}
	if err := runProbe(context.Background(), []string{"--url", ok.URL + "/down"}, nil, &out, &out); err == nil {
		t.Fatal("probe of a 503 succeeded")
	}
	if err := runProbe(context.Background(), []string{"--url", "ftp://x"}, nil, &out, &out); err == nil {
		t.Fatal("probe of a non-http URL succeeded")
	}
}
