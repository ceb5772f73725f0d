package bench

import (
	"sort"
	"time"

	"github.com/promptq/promptq/internal/fakeopenai"
)

// Window is what the fake's own accounting shows over the measured window
// of a run: from Config.Warmup after the first request to the end of the
// cell duration or the last admission, whichever is first.
type Window struct {
	// From and To bound the window, in seconds since the first request.
	From float64 `json:"from_s"`
	To   float64 `json:"to_s"`
	// Binding is the limit measured: "requests" or "tokens".
	Binding string `json:"binding"`
	// Utilisation is the share of the binding limit's refill over the
	// window that requests used (see utilisation).
	Utilisation float64 `json:"utilisation"`
	// Throttled is the share of requests in the window answered 429.
	Throttled float64 `json:"throttled_share"`
	// HalvedAt is when the limits halved, in seconds since the first
	// request (0: no halving). The figures below are set only then.
	HalvedAt float64 `json:"halved_at_s,omitempty"`
	// ThrottledAfterHalving is the 429 share from the halving to To.
	ThrottledAfterHalving float64 `json:"throttled_after_halving,omitempty"`
	// UtilisationAfterHalving is the utilisation of the new limit from the
	// halving to To.
	UtilisationAfterHalving float64 `json:"utilisation_after_halving,omitempty"`
	// Recovery is the time from the halving until a RecoveryWindow in which
	// the new limit was used at RecoveryTarget or more starts, in seconds;
	// -1 when none did before To.
	Recovery float64 `json:"recovery_s,omitempty"`
}

// Recovery measurement after a halving.
const (
	RecoveryWindow = 2 * time.Second
	RecoveryTarget = 0.95
)

// utilisation is how much of one bucket's refill between from and to the
// admitted requests used, from samples of the fake's accounting taken in
// time order:
//
//	(work admitted - what the bucket drained) / (limit/60 × seconds)
//
// "Drained" is the fall of the bucket's level from the start to the end of
// a stretch, so work paid from a burst stored before the window does not
// count, while a level that rose (unused refill kept for later) is not
// credited. The window is cut where the limit changes (a halving); each
// stretch runs between samples with the same limit, and the few
// milliseconds between the last sample before a change and the first after
// count in neither. tokens picks the token bucket, else the request bucket.
// It returns 0 when the samples do not cover a stretch.
func utilisation(samples []fakeopenai.Sample, from, to time.Time, tokens bool) float64 {
	used, ideal := usage(samples, from, to, tokens)
	if ideal <= 0 {
		return 0
	}
	return used / ideal
}

// usage returns the two sides of utilisation: the refill the admitted
// requests used between from and to, and the refill the limit allowed
// (limit/60 × seconds), both in the bucket's units. An unlimited bucket
// allows nothing.
func usage(samples []fakeopenai.Sample, from, to time.Time, tokens bool) (used, ideal float64) {
	lo := sort.Search(len(samples), func(i int) bool { return !samples[i].At.Before(from) })
	hi := sort.Search(len(samples), func(i int) bool { return samples[i].At.After(to) }) - 1
	if lo >= hi || hi >= len(samples) {
		return 0, 0
	}
	limit := func(s fakeopenai.Sample) int {
		if tokens {
			return s.TPM
		}
		return s.RPM
	}
	level := func(s fakeopenai.Sample) float64 {
		if tokens {
			return s.TokenLevel
		}
		return s.RequestLevel
	}
	work := func(s fakeopenai.Sample) float64 {
		if tokens {
			return float64(s.TokensCharged)
		}
		return float64(s.Admitted)
	}
	start := lo
	for i := lo + 1; i <= hi+1; i++ {
		if i <= hi && limit(samples[i]) == limit(samples[start]) {
			continue
		}
		a, b := samples[start], samples[i-1]
		if lim := limit(a); lim > 0 && b.At.After(a.At) {
			used += work(b) - work(a) - max(0, level(a)-level(b))
			ideal += float64(lim) / 60 * b.At.Sub(a.At).Seconds()
		}
		start = i
	}
	return used, ideal
}

// poolUtilisation is utilisation for several accounts' buckets together
// (one sample series per account): each account's utilisation weighted by
// the refill its limit allowed over [from, to], so an idle account counts
// against the pool in proportion to its limit.
//
// Each account's utilisation is measured over its window cut to its
// admissions (admittedSpan): a request costs hundreds of tokens, so a
// window that ends while the bucket refills towards the next one would
// otherwise count that refill as unused although the client is only
// waiting for it. Neither end moves by more than maxCut, so an account that
// stopped sending still counts as idle.
func poolUtilisation(accounts [][]fakeopenai.Sample, from, to time.Time, maxCut time.Duration, tokens bool) float64 {
	var sum, weights float64
	for _, s := range accounts {
		_, weight := usage(s, from, to, tokens)
		a, b := admittedSpan(s, from, to, maxCut)
		if used, ideal := usage(s, a, b, tokens); ideal > 0 && weight > 0 {
			sum += used / ideal * weight
			weights += weight
		}
	}
	if weights <= 0 {
		return 0
	}
	return sum / weights
}

// admittedSpan cuts [from, to] to the first and the last sample in it
// taken right after an admission (Admitted grew since the sample before),
// where the bucket has just paid for a request. Each end moves by at most
// maxCut; an end with no admission within maxCut stays where it was.
func admittedSpan(samples []fakeopenai.Sample, from, to time.Time, maxCut time.Duration) (time.Time, time.Time) {
	lo := sort.Search(len(samples), func(i int) bool { return !samples[i].At.Before(from) })
	hi := sort.Search(len(samples), func(i int) bool { return samples[i].At.After(to) }) - 1
	admitted := func(i int) bool { return i > 0 && samples[i].Admitted > samples[i-1].Admitted }
	a, b := from, to
	for i := lo; i <= hi && !samples[i].At.After(from.Add(maxCut)); i++ {
		if admitted(i) {
			a = samples[i].At
			break
		}
	}
	for i := hi; i >= lo && !samples[i].At.Before(to.Add(-maxCut)); i-- {
		if admitted(i) {
			b = samples[i].At
			break
		}
	}
	if !b.After(a) {
		return from, to
	}
	return a, b
}

// poolThrottled is the share of the accounts' requests between from and
// to answered 429 rate_limit_exceeded, with the counts.
func poolThrottled(accounts [][]fakeopenai.Sample, from, to time.Time) (share float64, limited, requests int) {
	for _, s := range accounts {
		a, okA := sampleAt(s, from)
		b, okB := sampleAt(s, to)
		if okA && okB && b.Requests >= a.Requests {
			limited += b.RateLimited - a.RateLimited
			requests += b.Requests - a.Requests
		}
	}
	if requests > 0 {
		share = float64(limited) / float64(requests)
	}
	return share, limited, requests
}

// throttled is the share of requests between from and to answered 429.
func throttled(samples []fakeopenai.Sample, from, to time.Time) float64 {
	a, okA := sampleAt(samples, from)
	b, okB := sampleAt(samples, to)
	if !okA || !okB || b.Requests <= a.Requests {
		return 0
	}
	return float64(b.RateLimited-a.RateLimited) / float64(b.Requests-a.Requests)
}

// sampleAt is the first sample at or after t (the last one if none is).
func sampleAt(samples []fakeopenai.Sample, t time.Time) (fakeopenai.Sample, bool) {
	if len(samples) == 0 {
		return fakeopenai.Sample{}, false
	}
	i := sort.Search(len(samples), func(i int) bool { return !samples[i].At.Before(t) })
	return samples[min(i, len(samples)-1)], true
}

// recovery is how long after halved a RecoveryWindow starts in which the
// new limit is used at RecoveryTarget or more, or -1 if none does before to.
func recovery(samples []fakeopenai.Sample, halved, to time.Time, tokens bool) time.Duration {
	i := sort.Search(len(samples), func(i int) bool { return samples[i].At.After(halved) })
	for ; i < len(samples); i++ {
		end := samples[i].At.Add(RecoveryWindow)
		if end.After(to) {
			break
		}
		if utilisation(samples, samples[i].At, end, tokens) >= RecoveryTarget {
			return samples[i].At.Sub(halved)
		}
	}
	return -1
}

// measureWindow computes the Window of a run from its samples: first is
// the first request, end the end of the cell duration (zero: none), halved
// the halving (zero: none).
func measureWindow(samples []fakeopenai.Sample, first, end, halved time.Time, warmup time.Duration, tokens bool) *Window {
	if len(samples) == 0 || first.IsZero() {
		return nil
	}
	from := first.Add(warmup)
	to := samples[len(samples)-1].LastAdmitAt
	if !end.IsZero() && end.Before(to) {
		to = end
	}
	w := &Window{From: warmup.Seconds(), To: to.Sub(first).Seconds(), Binding: "requests"}
	if tokens {
		w.Binding = "tokens"
	}
	if !to.After(from) {
		return w
	}
	w.Utilisation = utilisation(samples, from, to, tokens)
	w.Throttled = throttled(samples, from, to)
	if !halved.IsZero() && halved.Before(to) {
		w.HalvedAt = halved.Sub(first).Seconds()
		w.ThrottledAfterHalving = throttled(samples, halved, to)
		w.UtilisationAfterHalving = utilisation(samples, halved, to, tokens)
		w.Recovery = recovery(samples, halved, to, tokens).Seconds()
		if w.Recovery < 0 {
			w.Recovery = -1
		}
	}
	return w
}
