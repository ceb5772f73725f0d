// Package quota keeps every promptq worker of an account, on any host, inside
// the provider's rate limits and the account's daily budget, as if one careful
// client held them: a batch runs at the limit, not under it and not over it.
//
// It also parses the provider's rate-limit headers (ParseHeaders) and
// classifies errors (see quota/backoff).
//
// # Usage
//
//	l, err := quota.New(rdb, quota.Config{TPM: 200_000, DailyTokens: 5_000_000})
//	in := quota.Input{Chars: charsOver4, Tokens: tokenizerCount}
//	d, err := l.ReserveRequest(ctx, "acme", in, maxOut)
//	switch {
//	case d.OK: // call the provider, then:
//		l.Settle(ctx, d.Reservation, quota.ParseHeaders(resp.Header, now), &usage)
//		// or l.Settle(..., nil) when the outcome is unknown (timeout, broken stream),
//		// or l.Refund(ctx, d.Reservation, info) when the provider did not charge (429).
//	case d.Paused, d.DailyExhausted: // put the task back until PausedUntil / DailyResetAt
//	default: // wait d.Wait, then Reserve again
//	}
//
// # The model
//
// OpenAI counts a request at admission as 1 request and input tokens +
// max_output_tokens, against two buckets whose capacity is the per-minute
// limit and which refill continuously at limit/60 per second. The limiter
// keeps the same two buckets per account in one Redis hash
// (keys.Limits), changed only by Lua scripts, so reservations from all hosts
// are serialised by Redis:
//
//   - Reserve (lua/reserve.lua) answers "paused" while the pause gate's record
//     is active, "daily exhausted" once used+cost would pass Threshold of a
//     daily budget, ErrCostExceedsLimit for a cost larger than a full bucket,
//     and otherwise refills both buckets to now and either debits them or
//     says how long until the cost fits. Admitted reservations enter an
//     in-flight set (keys.Inflight) with an expiry; expired ones leave it
//     with their debit kept, since nobody knows whether they were charged.
//   - Settle (lua/settle.lua) removes the reservation and reconciles the
//     debit once. With the provider's remaining-tokens figure the debit
//     stays what was reserved (the calibrated estimate) and the header sync
//     puts the level where the provider's is; usage says what was billed,
//     which is not always what the rate limiter counted (OpenAI's counts
//     characters/4). Without that figure the token debit becomes actual
//     input + the reserved max output, never less than the actual total.
//     Unused output is never refunded, because OpenAI counts
//     max_output_tokens and does not give the difference back. The daily
//     counter becomes the actual total, which is what is billed. With
//     unknown usage the debit stays. Refund gives it all back.
//
// # Cost calibration: what a request costs is learned, not assumed
//
// The provider never says how it counts a request's input; it says what
// it counted. ReserveRequest takes two bases of the input (Input):
// ceil(characters/4) plus framing per message, OpenAI's documented
// estimate, and the tokenizer's count plus framing. They differ in both
// directions: English prose has 10-20% fewer tokens than characters/4,
// code more, CJK text several times more. Before anything is learned a
// request reserves the larger basis.
//
// Every response that carries x-ratelimit-remaining-tokens teaches the
// limiter (lua/calib.lua). The sent set (keys.Sent) lists recent requests
// by send time with their bases; each gets its response's remaining figure
// attached. Two requests next to each other in it (nothing charged in
// between) whose figures are both known give the later one's charge
// exactly: the first's remaining plus the refill between their send times
// (up to the bucket's capacity), less the second's remaining. Its output
// allowance is known, so the rest is its input charge, compared with each
// basis; samples are pooled to 256 tokens of the chars basis, since a
// short prompt's ratio is mostly timing noise. A ring of the last
// CalibrationRing pooled ratios is kept per basis; the basis whose ratios
// spread least is the provider's formula (a flat ratio whatever the text),
// and its 0.8 quantile, not its mean, is the factor, so the estimate errs
// above the charge (0.8 rather than 0.9: a request delayed on a loaded
// host skews a sample high, and the top of the ring is mostly such
// delays). Remaining above the limit, a charge over 20 times the basis and
// negative usage are refused and counted; none of them moves the estimate
// or raises a level. A provider that sends no remaining figure is
// calibrated from usage.input_tokens. Snapshot.Calibration and `promptq
// status` show the factor, basis, samples and spread. Calibration is per
// account, not per model.
//
// An over-estimate costs a margin of burst headroom, not sustained rate
// (the header sync trues the level up at every response); an
// under-estimate of the requests in flight is what draws 429s, which is
// why the quantile sits above the mean.
//
// A bucket's limit is the one learned from x-ratelimit-limit-* (or, when that
// header is missing, inferred from remaining and reset), capped by Config.RPM
// or Config.TPM; before the first response the configured caps serve alone,
// and a bucket with neither does not constrain. Learned limits hold one
// minute of refill, configured ones Config.Burst.
//
// # Header sync: the provider's word beats the local model
//
// When a response carries x-ratelimit-remaining-*, the provider's level at
// the moment it admitted that request is known, up to what it had not seen
// yet. Reservations in flight that were *sent* at or after this one were
// certainly not counted; those sent within ReorderWindow (25ms) before it may
// or may not have been, because near-simultaneous sends can reach the
// provider in the opposite order. So remaining gives a range:
//
//	[remaining - after - window, remaining - after]
//
// and the level moves into it by the smallest change: lowered to its top when
// above (spend the limiter cannot see: another client on the key, estimate
// error), raised to its bottom when below (capacity the local model wrongly
// holds back: expired reservations, over-estimates), left alone inside it,
// where the local model, which debits every reservation, knows better. Two
// more rules keep it safe:
//
//   - Ordering: a response sent at least ReorderWindow after the newest one
//     applied (field hat) moves the level into its range; one within the
//     window of it may only lower the level; an older one is ignored.
//   - The time between the provider's measurement and the settle is not
//     credited as refill. The local level therefore trails the provider's by
//     about one response latency of refill: a constant margin against 429s
//     that costs burst headroom, not sustained rate.
//
// It also learns each bucket's capacity as the largest remaining + reset ×
// rate seen (rounded to nearest), so a provider that quantises its
// per-minute limit per second is not burst into 429s after an idle moment.
//
// In the package's simulations (several workers, provider bucket models
// charging characters/4, the tokenizer count, ±20% of it or ±10% noise,
// on prose, code and CJK mixes; see calib_test.go) this reaches 99-100% of
// the token limit with no 429s;
// spend outside the limiter's view shows up as occasional 429s until the next
// response is seen.
//
// # slow_down ramp
//
// OpenAI's 503 slow_down asks a client to reduce its request rate, hold it
// for 15 minutes and then increase it gradually. Limiter.SlowDown (the worker
// calls it on every slow_down) stores a ramp in the account's limits hash:
// the fraction of its limits the account may use is cut to Config.RampCut
// times the current one (default half, never below RampMinFraction), and
// then grows by at most Config.RampGrowth per Config.RampInterval (default
// +50% per 15 minutes), compounded, until it is back at 1. Reserve and Settle
// compute the same fraction in Lua and apply it to the request and the token
// limit alike, as a configured cap of fraction × limit. A second slow_down
// cuts again from the fraction in force. Snapshot.RampFraction shows it.
//
// # Tenant budgets
//
// A request may name the producer it is for inside the account
// (Reserve(..., WithTenant(t)); tasks carry it in their "tenant" field).
// SetTenantBudget gives a tenant requests/min, tokens/min and requests/day
// budgets, stored in the account's tenants hash (keys.Tenants) so that they
// can change at run time and apply at the next Reserve on every worker. The
// tenant's buckets (keys.Tenant) are shaped like configured caps (capacity
// TenantBurst of refill) and are checked and debited by the same reserve
// script, after the account's: a tenant whose bucket is short gets a wait
// (Decision.TenantLimited), its daily budget a wait until the next budget
// day, so one noisy producer cannot take the whole account. Refund gives the
// tenant's debit back, Settle corrects its token debit like the account's.
//
// # Weighted fair sharing
//
// Whatever their budgets, tenants with pending work (a request waiting for
// a scheduled turn or asking again after a refusal, or one that did within
// FairGrace; requests without a tenant are the tenant "") share short
// headroom in proportion to their weights (TenantBudget.Weight, default 1).
// The reserve script keeps a virtual time per tenant (keys.FairVT): the
// account capacity its admitted requests used, in ms of the binding rate,
// divided by its weight; keys.FairSeen holds until when each tenant has
// pending work. A request that fits now is admitted whatever the tenant's
// virtual time, so no capacity idles for a tenant that cannot use its
// share. A request that would take a scheduled turn (Config.Schedule) is
// refused with Decision.FairShare while its tenant is more than FairSlack
// ahead of another tenant with pending work; the worker asks again after
// the refusal's wait and returns the task to asynq after its MaxInlineWait.
// A tenant whose pending work ended leaves both sets and starts level with
// the others when it returns; one with pending work that uses little falls
// at most FairMaxLag behind, so nobody banks credit for idle time. A tenant
// held back by its own budget does not count as pending. Without scheduling
// (Config.Schedule 0) or with Config.NoFairShare, headroom goes first come,
// first served and the fair keys are not touched. Snapshot.Fair shows it.
//
// # Time
//
// Now reaches every script as an argument from Config.Clock, so tests drive
// it. Hosts' clocks may differ a little: the refill timestamp never moves
// backwards, so a host whose clock lags sees no refill until it catches up
// (a loss bounded by the skew, never an over-admission). The budget day is
// computed in Go in Config.Location and named in the day key.
package quota
