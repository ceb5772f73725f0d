package fakeopenai

import (
	"math"
	"strconv"
	"time"
)

// bucket is one continuously refilling token bucket, OpenAI style: it holds
// up to capacity units and gains limit/60 units per second. It is not safe
// for concurrent use; Server guards it with its mutex.
type bucket struct {
	limit    int     // per-minute limit, as reported in x-ratelimit-limit-*
	capacity float64 // limit*Burst/1min
	rate     float64 // units per second
	level    float64
	last     time.Time
}

// newBucket returns a full bucket, or nil when limit is 0 (unlimited).
// minCapacity keeps the request bucket able to hold at least one request.
func newBucket(limit int, burst time.Duration, minCapacity float64) *bucket {
	if limit <= 0 {
		return nil
	}
	capacity := max(float64(limit)*burst.Seconds()/60, minCapacity)
	return &bucket{limit: limit, capacity: capacity, rate: float64(limit) / 60, level: capacity}
}

// refill brings the level up to date at now. A clock that goes backwards
// refills nothing.
func (b *bucket) refill(now time.Time) {
	if b.last.IsZero() {
		b.last = now
		return
	}
	if el := now.Sub(b.last); el > 0 {
		b.level = math.Min(b.capacity, b.level+el.Seconds()*b.rate)
		b.last = now
	}
}

// wait is how long until the bucket holds n units (0 when it already does).
func (b *bucket) wait(n float64) time.Duration {
	if b.level >= n {
		return 0
	}
	return secondsToDuration((n - b.level) / b.rate)
}

// snapshot returns what the x-ratelimit headers report now.
func (b *bucket) snapshot() bucketState {
	return bucketState{
		limit:     b.limit,
		remaining: int(math.Floor(b.level)),
		reset:     secondsToDuration((b.capacity - b.level) / b.rate),
	}
}

// bucketState is the header view of a bucket: limit, floor(level), time to full.
type bucketState struct {
	limit     int
	remaining int
	reset     time.Duration
}

// secondsToDuration converts seconds to a Duration rounded up to the
// millisecond, so that waiting that long is always enough.
func secondsToDuration(s float64) time.Duration {
	if s <= 0 {
		return 0
	}
	ms := math.Ceil(s*1000 - 1e-6) // tolerate float noise like 999.9999999
	return time.Duration(ms) * time.Millisecond
}

// formatReset renders a duration the way the x-ratelimit-reset-* headers do
// ("1s", "6m0s", "20ms", "1.5s"; "0s" when full).
func formatReset(d time.Duration) string { return d.String() }

// retryAfterSeconds is the retry-after header value: whole seconds, rounded up.
func retryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10)
}
