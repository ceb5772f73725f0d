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
