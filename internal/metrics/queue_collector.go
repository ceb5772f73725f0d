package metrics

import (
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
)

// QueueInspector is the part of *asynq.Inspector the queue collector reads.
type QueueInspector interface {
	Queues() ([]string, error)
	GetQueueInfo(queue string) (*asynq.QueueInfo, error)
}

var _ QueueInspector = (*asynq.Inspector)(nil)

// Names and help texts follow github.com/hibiken/asynq/x/metrics, but for its
// two gauges named like counters, which Prometheus's lint refuses:
// asynq_tasks_enqueued_total is asynq_queue_tasks here and
// asynq_queue_paused_total is asynq_queue_paused. That module is not used
// directly: its only release (2021) pulls in go-redis/v8 and predates asynq
// v0.26.
var (
	queueTasksDesc = prometheus.NewDesc("asynq_queue_tasks",
		"Number of tasks in a queue; broken down by queue and state.", []string{"queue", "state"}, nil)
	queueSizeDesc = prometheus.NewDesc("asynq_queue_size",
		"Number of tasks in a queue.", []string{"queue"}, nil)
	queueLatencyDesc = prometheus.NewDesc("asynq_queue_latency_seconds",
		"Number of seconds the oldest pending task is waiting in pending state to be processed.", []string{"queue"}, nil)
	queueMemoryDesc = prometheus.NewDesc("asynq_queue_memory_usage_approx_bytes",
		"Number of memory used by a given queue (approximated number by sampling).", []string{"queue"}, nil)
	queueProcessedDesc = prometheus.NewDesc("asynq_tasks_processed_total",
		"Number of tasks processed (both succeeded and failed); broken down by queue.", []string{"queue"}, nil)
	queueFailedDesc = prometheus.NewDesc("asynq_tasks_failed_total",
		"Number of tasks failed; broken down by queue.", []string{"queue"}, nil)
	queuePausedDesc = prometheus.NewDesc("asynq_queue_paused",
		"1 while the queue is paused.", []string{"queue"}, nil)
	queueErrorDesc = prometheus.NewDesc("asynq_queue_scrape_error",
		"1 when a queue's info could not be read on this scrape.", []string{"queue"}, nil)
)

// QueueCollector exports the state of every asynq queue, read through an
// inspector at scrape time.
type QueueCollector struct {
	insp QueueInspector
}

var _ prometheus.Collector = (*QueueCollector)(nil)

// NewQueueCollector returns a collector reading queues through insp.
func NewQueueCollector(insp QueueInspector) *QueueCollector { return &QueueCollector{insp: insp} }

// Describe sends the descriptors of every series the collector may export.
func (c *QueueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{queueTasksDesc, queueSizeDesc, queueLatencyDesc, queueMemoryDesc,
		queueProcessedDesc, queueFailedDesc, queuePausedDesc, queueErrorDesc} {
		ch <- d
	}
}

// Collect reads every queue's info and sends its series. A queue whose info
// cannot be read gets asynq_queue_scrape_error 1; failing to list queues makes
// the scrape report an error.
func (c *QueueCollector) Collect(ch chan<- prometheus.Metric) {
	names, err := c.insp.Queues()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(queueSizeDesc, err)
		return
	}
	for _, q := range names {
		info, err := c.insp.GetQueueInfo(q)
		if err != nil {
			ch <- prometheus.MustNewConstMetric(queueErrorDesc, prometheus.GaugeValue, 1, q)
			continue
		}
		ch <- prometheus.MustNewConstMetric(queueErrorDesc, prometheus.GaugeValue, 0, q)
		for _, s := range []struct {
			state string
			n     int
		}{
			{"pending", info.Pending}, {"active", info.Active}, {"scheduled", info.Scheduled},
			{"retry", info.Retry}, {"archived", info.Archived}, {"completed", info.Completed},
			{"aggregating", info.Aggregating},
		} {
			ch <- prometheus.MustNewConstMetric(queueTasksDesc, prometheus.GaugeValue, float64(s.n), q, s.state)
		}
		paused := 0.0
		if info.Paused {
			paused = 1
		}
		ch <- prometheus.MustNewConstMetric(queueSizeDesc, prometheus.GaugeValue, float64(info.Size), q)
		ch <- prometheus.MustNewConstMetric(queueLatencyDesc, prometheus.GaugeValue, info.Latency.Seconds(), q)
		ch <- prometheus.MustNewConstMetric(queueMemoryDesc, prometheus.GaugeValue, float64(info.MemoryUsage), q)
		ch <- prometheus.MustNewConstMetric(queueProcessedDesc, prometheus.CounterValue, float64(info.ProcessedTotal), q)
		ch <- prometheus.MustNewConstMetric(queueFailedDesc, prometheus.CounterValue, float64(info.FailedTotal), q)
		ch <- prometheus.MustNewConstMetric(queuePausedDesc, prometheus.GaugeValue, paused, q)
	}
}
