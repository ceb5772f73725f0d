package quota

import (
	"math"
	"time"
)

// dayTTL is how long a day's counters outlive their last write: long enough
// for `promptq status` to show yesterday, short enough not to pile up.
const dayTTL = 48 * time.Hour

// date is the budget day of t: YYYY-MM-DD in the configured zone.
func (l *Limiter) date(t time.Time) string { return t.In(l.cfg.Location).Format(time.DateOnly) }

// nextMidnight is the start of the budget day after t's.
func (l *Limiter) nextMidnight(t time.Time) time.Time {
	t = t.In(l.cfg.Location)
	y, m, d := t.Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, l.cfg.Location)
}

// dailyStop is the used amount at which a budget stops admitting (0 = no budget).
func (l *Limiter) dailyStop(budget int64) int64 {
	if budget <= 0 {
		return 0
	}
	// A tiny epsilon keeps 0.8*100 from landing on 79.999...
	return max(1, int64(math.Floor(l.cfg.Threshold*float64(budget)+1e-9)))
}

// DailyState is today's budget use.
type DailyState struct {
	Date                     string // YYYY-MM-DD in Config.Location
	Requests, Tokens         int64  // used today, including reservations in flight
	RequestLimit, TokenLimit int64  // configured budgets (0 = none)
	Threshold                float64
	ResetAt                  time.Time // next midnight in Config.Location
}
