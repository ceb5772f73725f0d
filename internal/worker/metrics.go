package worker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcome label values of the provider series.
const (
	OutcomeSuccess = "success"
	OutcomeError   = "error"
	// ErrorKindNone is the error_kind of a successful request.
	ErrorKindNone = "none"
)

// Metrics are the series one worker process records about its own work:
// what it asked the provider and how long things took. They are this
// process's alone (summing them over pods counts each request once), unlike
// the cluster-wide quota series that `promptq serve` reads from Redis.
// Create them with NewMetrics, register them in the caller's registry, and
// pass them in HandlerConfig.Metrics. A nil *Metrics records nothing.
type Metrics struct {
	providerDuration *prometheus.HistogramVec
	requests         *prometheus.CounterVec
	startDelay       *prometheus.HistogramVec
	quotaWait        *prometheus.HistogramVec
	tokens           *prometheus.HistogramVec
}

var _ prometheus.Collector = (*Metrics)(nil)

// NewMetrics returns the worker's series for account (a constant label, so
// the series of several workers of one account add up).
func NewMetrics(account string) *Metrics {
	cl := prometheus.Labels{"account": account}
	return &Metrics{
		providerDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "promptq_provider_request_duration_seconds",
			Help:        "Time from sending a request to the provider until its whole answer (or error) arrived, by endpoint, model and outcome (success or error).",
			ConstLabels: cl,
			Buckets:     []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320},
		}, []string{"endpoint", "model", "outcome"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "promptq_provider_requests_total",
			Help:        "Requests sent to the provider, by endpoint, model, outcome (success or error) and error kind (none, rate_limit, quota, server, timeout, network, auth, forbidden, invalid, unknown...).",
			ConstLabels: cl,
		}, []string{"endpoint", "model", "outcome", "error_kind"}),
		startDelay: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "promptq_task_start_delay_seconds",
			Help:        "Time from a task's enqueue until its first provider request was sent (queueing, pauses and waits for quota included), by queue. Tasks enqueued by a promptq older than this series are not counted.",
			ConstLabels: cl,
			Buckets:     prometheus.ExponentialBuckets(0.1, 4, 10), // 0.1 s .. ~7 h
		}, []string{"queue"}),
		quotaWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "promptq_quota_wait_seconds",
			Help:        "Time a task spent in the handler waiting for admission (pause gate, quota headroom, its scheduled turn), by result: admitted, or deferred (handed back to asynq to come again later).",
			ConstLabels: cl,
			Buckets:     []float64{0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10},
		}, []string{"result"}),
		tokens: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "promptq_request_tokens",
			Help:        "Tokens per successful request as the provider's usage reported them, by model and direction (input or output).",
			ConstLabels: cl,
			Buckets:     prometheus.ExponentialBuckets(16, 4, 9), // 16 .. ~1M
		}, []string{"model", "direction"}),
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.providerDuration.Describe(ch)
	m.requests.Describe(ch)
	m.startDelay.Describe(ch)
	m.quotaWait.Describe(ch)
	m.tokens.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.providerDuration.Collect(ch)
	m.requests.Collect(ch)
	m.startDelay.Collect(ch)
	m.quotaWait.Collect(ch)
	m.tokens.Collect(ch)
}

// providerCall records one provider request: errKind is "" on success.
func (m *Metrics) providerCall(endpoint, model, errKind string, d time.Duration) {
	if m == nil {
		return
	}
	outcome := OutcomeSuccess
	if errKind != "" {
		outcome = OutcomeError
	} else {
		errKind = ErrorKindNone
	}
	m.providerDuration.WithLabelValues(endpoint, model, outcome).Observe(d.Seconds())
	m.requests.WithLabelValues(endpoint, model, outcome, errKind).Inc()
}

// taskStarted records the time from enqueue to the first provider request.
func (m *Metrics) taskStarted(queue string, d time.Duration) {
	if m == nil {
		return
	}
	m.startDelay.WithLabelValues(queue).Observe(max(d, 0).Seconds())
}

// admitted records a wait for admission; deferred when the task went back
// to asynq.
func (m *Metrics) admitted(d time.Duration, deferred bool) {
	if m == nil {
		return
	}
	result := "admitted"
	if deferred {
		result = "deferred"
	}
	m.quotaWait.WithLabelValues(result).Observe(d.Seconds())
}

// usage records the tokens of a successful request.
func (m *Metrics) usage(model string, input, output int64) {
	if m == nil {
		return
	}
	m.tokens.WithLabelValues(model, "input").Observe(float64(input))
	m.tokens.WithLabelValues(model, "output").Observe(float64(output))
}
