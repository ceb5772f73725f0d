package status

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/pausegate"
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
	// ETAMs is Backlog / PerSecond in milliseconds, plus the time left of
	// a pause that holds the queue; null when no rate is known or while the
	// queue is held by a pause without an end.
	ETAMs *int64 `json:"eta_ms"`
	// Paused is true while the queue is held: every account that serves it
	// is paused, or the asynq queue itself is paused.
	Paused bool `json:"paused"`
	// PausedUntil is when the hold ends (RFC 3339); null when not paused or
	// paused until resumed.
	PausedUntil *string `json:"paused_until"`
	// PauseReason is the holding pause's reason ("" when not paused).
	PauseReason string `json:"pause_reason"`
}

// hold is a pause that keeps a queue's tasks from being taken.
type hold struct {
	until  time.Time // zero: until resumed
	reason string
}

// String is the hold as progress output shows it: "paused until T (reason)".
func (h hold) String() string {
	if h.until.IsZero() {
		return fmt.Sprintf("paused until resumed (%s)", h.reason)
	}
	return fmt.Sprintf("paused until %s (%s)", h.until.UTC().Format(time.RFC3339), h.reason)
}

// holds returns the pause holding each queue that every account serving it
// (of accounts) has paused: the one that ends first.
func holds(ctx context.Context, gate *pausegate.Gate, accounts []string) (map[string]hold, []pausegate.Status, error) {
	serving, held := map[string]int{}, map[string][]hold{}
	sts := make([]pausegate.Status, 0, len(accounts))
	for _, a := range accounts {
		st, err := gate.Status(ctx, a)
		if err != nil {
			return nil, nil, err
		}
		sts = append(sts, st)
		for _, q := range st.Queues {
			serving[q]++
			if st.Active {
				held[q] = append(held[q], hold{until: st.Record.Until, reason: st.Record.Reason})
			}
		}
	}
	out := map[string]hold{}
	for q, hs := range held {
		if len(hs) == serving[q] {
			out[q] = earliest(hs)
		}
	}
	return out, sts, nil
}

// PauseNote says what holds queues for accounts, for progress output:
// "paused until T (reason)" for the first held queue (by name) with
// another note per distinct pause, or "" when none is held.
func PauseNote(ctx context.Context, rdb redis.UniversalClient, accounts, queues []string) (string, error) {
	gate, err := pausegate.New(rdb, pausegate.Config{})
	if err != nil {
		return "", err
	}
	hs, _, err := holds(ctx, gate, accounts)
	if err != nil {
		return "", err
	}
	var notes []string
	seen := map[string]bool{}
	for _, q := range queues {
		if h, ok := hs[q]; ok && !seen[h.String()] {
			seen[h.String()] = true
			notes = append(notes, h.String())
		}
	}
	return strings.Join(notes, "; "), nil
}

// earliest returns the hold that ends first (one with an end before one
// without).
func earliest(hs []hold) hold {
	best := hs[0]
	for _, h := range hs[1:] {
		if !h.until.IsZero() && (best.until.IsZero() || h.until.Before(best.until)) {
			best = h
		}
	}
	return best
}

// eta is the time the backlog needs at perSecond, after the hold h (nil:
// none) is over; nil without a rate or while h has no end.
func eta(backlog int, perSecond float64, h *hold, now time.Time) *int64 {
	if perSecond <= 0 {
		return nil
	}
	ms := int64(math.Ceil(1000 * float64(backlog) / perSecond))
	if h != nil {
		if h.until.IsZero() {
			return nil
		}
		ms += max(ceilMs(h.until.Sub(now)), 0)
	}
	return &ms
}

// applyHold marks t as held by h and recomputes its ETA.
func (t *Throughput) applyHold(h hold, now time.Time) {
	t.Paused, t.PauseReason = true, h.reason
	if !h.until.IsZero() {
		s := h.until.UTC().Format(time.RFC3339)
		t.PausedUntil = &s
	}
	t.ETAMs = eta(t.Backlog, t.PerSecond, &h, now)
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
	t.ETAMs = eta(t.Backlog, t.PerSecond, nil, now)
	return t
}
