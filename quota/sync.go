package quota

import (
	"context"
	"math"
	"time"
)

// Sync applies the headers of a response that has only begun (a stream
// that just opened) to the shared buckets at once, keeping r in flight for
// the Settle or Refund that follows when the stream ends.
func (l *Limiter) Sync(ctx context.Context, r Reservation, info HeaderInfo) error {
	return l.settle(ctx, "sync", r, info, 0, 0, 0)
}

// resetMs is a bucket's reset in ms, -1 when unknown.
func resetMs(b Bucket) int64 {
	if b.Reset < 0 {
		return -1
	}
	return b.Reset.Milliseconds()
}

// known maps every negative (unknown) header value to -1.
func known(v int64) int64 { return max(v, -1) }

// inferLimit derives a per-minute limit from remaining and reset when the
// limit header is missing: a bucket refilling limit/60s that is full after
// reset holds remaining = limit*(60s-reset)/60s. -1 when it cannot tell.
func inferLimit(b Bucket) int64 {
	if b.Limit > 0 || b.Remaining <= 0 || b.Reset <= 0 || b.Reset >= time.Minute {
		return -1
	}
	return int64(math.Round(float64(b.Remaining) * float64(time.Minute) / float64(time.Minute-b.Reset)))
}
