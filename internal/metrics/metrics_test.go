package metrics

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/promptq/promptq/internal/clock"
	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/internal/testutil"
	"github.com/promptq/promptq/pausegate"
)

type fakeInspector map[string]*asynq.QueueInfo // nil info = unreadable

func (f fakeInspector) Queues() ([]string, error) {
	names := make([]string, 0, len(f))
	for q := range f {
		names = append(names, q)
	}
	return names, nil
}

func (f fakeInspector) GetQueueInfo(q string) (*asynq.QueueInfo, error) {
	if f[q] == nil {
		return nil, errors.New("broken queue")
	}
	return f[q], nil
}

// gather scrapes c and returns value by metric name and label values.
func gather(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "|" + l.GetValue()
			}
			out[key] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	if m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

func TestQueueCollector(t *testing.T) {
	insp := fakeInspector{
		"ok":     {Queue: "ok", Size: 5, Pending: 3, Retry: 2, Paused: true, Latency: 1500 * time.Millisecond, ProcessedTotal: 7, FailedTotal: 1},
		"broken": nil,
	}
	got := gather(t, NewQueueCollector(insp))
	want := map[string]float64{
		"asynq_tasks_enqueued_total|ok|pending": 3,
		"asynq_tasks_enqueued_total|ok|retry":   2,
		"asynq_tasks_enqueued_total|ok|active":  0,
		"asynq_queue_size|ok":                   5,
		"asynq_queue_paused_total|ok":           1,
		"asynq_queue_latency_seconds|ok":        1.5,
		"asynq_tasks_processed_total|ok":        7,
		"asynq_tasks_failed_total|ok":           1,
		"asynq_queue_scrape_error|ok":           0,
		"asynq_queue_scrape_error|broken":       1, // one bad queue does not fail the scrape
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if _, ok := got["asynq_queue_size|broken"]; ok {
		t.Error("broken queue exported a size")
	}
}

func TestCollectorPause(t *testing.T) {
	r := testutil.NewRedis(t)
	ctx := context.Background()
	acct := testutil.Name(t)
	t.Cleanup(func() { r.Client.Del(ctx, keys.Pause(acct)) })
	clk := clock.NewFake(time.Now().Truncate(time.Millisecond)) // pauses are stored in ms
	gate, err := pausegate.New(r.Client, pausegate.Config{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCollector(Config{Redis: r.Client, Gate: gate, Clock: clk,
		Accounts: func(context.Context) ([]string, error) { return []string{acct}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name              string
		pause             *pausegate.PauseRequest
		paused, remaining float64
	}{
		{"running", nil, 0, 0},
		{"for 90s", &pausegate.PauseRequest{Until: clk.Now().Add(90 * time.Second), Kind: pausegate.KindQuota}, 1, 90},
		{"until resumed", &pausegate.PauseRequest{Kind: pausegate.KindManual}, 1, math.Inf(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.pause != nil {
				if _, err := gate.Pause(ctx, acct, *tt.pause); err != nil {
					t.Fatal(err)
				}
			}
			got := gather(t, c)
			if got["promptq_paused|"+acct] != tt.paused || got["promptq_pause_remaining_seconds|"+acct] != tt.remaining {
				t.Fatalf("paused %v remaining %v, want %v %v", got["promptq_paused|"+acct],
					got["promptq_pause_remaining_seconds|"+acct], tt.paused, tt.remaining)
			}
			if got["promptq_quota_limit|"+acct+"|requests"] != -1 || got["promptq_scrape_error|"+acct] != 0 {
				t.Fatalf("quota limit / scrape error: %v", got)
			}
		})
	}
}

func TestCollectorConfig(t *testing.T) {
	if _, err := NewCollector(Config{}); err == nil {
		t.Fatal("NewCollector without Redis succeeded")
	}
}
