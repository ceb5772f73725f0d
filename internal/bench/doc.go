// Package bench measures promptq against the naive baseline on the same
// load: a throwaway Redis, the fake provider in-process over loopback HTTP
// with given limits, K worker processes (`promptq worker`) and N prompt
// tasks. Each scenario runs twice, once with quota control on (promptq) and
// once with --quota-control=false (the naive baseline: asynq + openai-go
// alone), and the report puts the two side by side.
//
// Feature scenarios (scenarios.go) change the sides: adaptive-kN adds a
// third run (promptq with --adaptive-concurrency, plain promptq, naive),
// slowdown-kN injects a 503 slow_down on both sides and traces the answer
// rate, tenants-kN compares promptq with and without a tenant budget, and
// fair-kN two tenants interleaved 10:1 in one queue with and without
// weighted fair sharing (--fair-share=false).
//
// The matrix ("--scenarios matrix", MatrixCells) runs realistic prompts
// (internal/corpus: prose, code, CJK, chat) against a family of fake
// providers: charge model (ceil(characters/4), exact tokenizer, ±10% noise,
// tokenizer ×1.2 and ×0.8), 429s whose precise wait is only in the body,
// bursts of 1s and 60s, RPM- or TPM-bound, latency of 100ms, 300ms or 2s with
// jitter, limits halving mid-run, and K = 1, 3, 8 workers. Each cell varies
// one axis of a base (m-base) or combines a few (m-cjk+tokenizer); see
// parseCell. Its figures are measured after Config.Warmup from samples of
// the fake's accounting (Window): the share of the binding limit's refill
// that admitted requests used, the 429 share, and after a halving the 429
// share and the time until the new limit is used at 95% again.
//
// The pool cells ("--scenarios pool", PoolCells; pool.go) run promptq alone,
// since the naive baseline has no notion of a pool: three `promptq worker
// --pool` processes on one queue, a multi-account fake (fakeopenai.Accounts)
// and, unless the name says otherwise, prose prompts. pool-2x300 measures
// two accounts' combined limit after the warm-up, pool-failover one account
// answering insufficient_quota after a third of the batch (requests it
// still got, the other's utilisation to the end), pool-tiers a slow
// overflow tier's share under a load the primaries absorb and under a
// backlog beyond them (poolPlan sizes them).
// Utilisation over several accounts is poolUtilisation.
//
// A pool cell's name may add the matrix's provider words after its base
// name (parsePoolCell): charge (chars, tokenizer, noisy, noisytok, tok120,
// tok80), prompts (prose, code, cjk, chat), waits (body, headers), latency
// (lat100ms, lat300ms, lat2s) and burst (b1s, b60s), e.g.
// pool-2x300+tokenizer+code or pool-failover+cjk+noisytok. The base name
// decides the cell's shape; the words the fake's provider, the prompts and
// the plan's sizing (their mean and largest charge). Bound, halve and
// workers are the base's and refused; a burst that holds less than the
// largest prompt at the pool's TPM is refused before anything runs.
// "--scenarios pool-family" (PoolFamily) runs pool-2x300 with
// +tokenizer+code, +cjk+tokenizer, +chat+noisy and +headers+lat100ms, and
// pool-failover+tokenizer+chat: about 7 minutes at the defaults.
//
// Figures come from the fake's own counters (requests, 429s, tokens
// charged, per-task request counts) and from Redis INFO commandstats, so
// what promptq believes about itself is never part of the measurement.
//
// Usage:
//
//	rep, err := bench.Run(ctx, bench.Config{Binary: "/path/to/promptq"})
//	if err != nil { ... }
//	rep.WriteTable(os.Stdout)
//
// `promptq bench` is the command-line front end.
package bench
