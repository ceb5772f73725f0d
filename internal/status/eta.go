package status

import (
	"math"
	"time"

	"github.com/hibiken/asynq"
)

// Throughput is a queue's observed completion rate and the time its backlog
// needs at that rate.
type Throughput struct {
	// PerSecond is tasks completed per second while the queue was working,
	// measured over the most recent completions inside the window, or the
	// assumed rate when nothing has been measured yet.
	PerSecond float64 `json:"per_second"`
	// Source is "observed", "assumed" or "none".
	Source string `json:"source"`
	// Samples is how many completions the observed rate rests on.
	Samples int `json:"samples"`
	// Backlog is pending + active + scheduled + retry.
	Backlog int `json:"backlog"`
	// ETAMs is Backlog / PerSecond in milliseconds; null when no rate is known.
	ETAMs *int64 `json:"eta_ms"`
}

// Options tune the report.
type Options struct {
	// RateWindow is how far back completions count towards the observed
	// rate (default 5 minutes).
	RateWindow time.Duration
	// AssumedRate is the completion rate (tasks/s) used for the ETA before
	// anything has been measured (default 0: no ETA until measured).
	AssumedRate float64
}

const rateWindowDefault = 5 * time.Minute

// throughput measures q from its most recent completed tasks (asynq keeps
// them, ordered by expiry = completion + retention, for the retention time),
// so measuring costs nothing on the workers' path.
func throughput(insp *asynq.Inspector, q string, info Queue, now time.Time, o Options) *Throughput {
	window := o.RateWindow
	if window <= 0 {
		window = rateWindowDefault
	}
	t := &Throughput{Backlog: info.Pending + info.Active + info.Scheduled + info.Retry, Source: "none"}
	const pageSize = 500
	var newest, oldest time.Time
	n := 0
	if info.Completed > 0 {
		last := (info.Completed + pageSize - 1) / pageSize
		tasks, err := insp.ListCompletedTasks(q, asynq.PageSize(pageSize), asynq.Page(last))
		if err == nil {
			for _, ti := range tasks {
				at := ti.CompletedAt
				if at.IsZero() || now.Sub(at) > window {
					continue
				}
				n++
				if newest.IsZero() || at.After(newest) {
					newest = at
				}
				if oldest.IsZero() || at.Before(oldest) {
					oldest = at
				}
			}
		}
	}
	if n >= 2 {
		// asynq records completion times in whole seconds: a burst inside
		// one second still means at least n-1 per second.
		span := max(newest.Sub(oldest), time.Second)
		t.PerSecond, t.Source, t.Samples = float64(n-1)/span.Seconds(), "observed", n
	} else if o.AssumedRate > 0 {
		t.PerSecond, t.Source = o.AssumedRate, "assumed"
	}
	if t.PerSecond > 0 {
		t.ETAMs = ptr(int64(math.Ceil(1000 * float64(t.Backlog) / t.PerSecond)))
	}
	return t
}
