// Package backoff turns a failed provider call into a decision: what kind of
// failure it was, whether retrying can help, and how long to wait first.
//
// The worker's handler passes the provider error to [Classify], which reads
// openai-go's typed *openai.Error (HTTP status, code, type, headers) and
// returns an [*Error]; the handler returns that error to asynq. A handler that
// only needs to wait (quota headroom, a paused account) returns a [*Wait]
// instead. The worker then wires two functions into asynq.Config:
//
//	srv := asynq.NewServer(redisOpt, asynq.Config{
//		RetryDelayFunc: func(n int, err error, _ *asynq.Task) time.Duration {
//			return backoff.RetryDelay(n, err)
//		},
//		IsFailure: backoff.IsFailure,
//	})
//
// and, for an [Error] with Permanent set, wraps asynq.SkipRetry so asynq
// archives the task at once (this package does not import asynq).
//
// In the handler:
//
//	resp, err := client.Chat.Completions.New(ctx, params)
//	if err != nil {
//		e := backoff.Classify(err, clk.Now())
//		if e.Permanent {
//			return fmt.Errorf("%w: %w", e, asynq.SkipRetry)
//		}
//		return e
//	}
//
// # Kinds
//
// The kind comes from the HTTP status and the provider's code or type, never
// from message text:
//
//	kind        when                                               permanent  counts as failure
//	rate_limit  429 (any code but the quota ones)                  no         no
//	quota       insufficient_quota, billing*, spend-limit codes     no         no
//	            (any 4xx), 402
//	server      5xx, 529, codes overloaded/server_error, 409       no         yes
//	network     transport errors, 408, cut or errored SSE stream,   no         yes
//	            context deadline or cancellation
//	invalid     400, 404, 413, 422 and other 4xx                    yes        yes
//	auth        401, 403                                            yes        yes
//	unknown     anything else                                       no         yes
//
// # Retry-after
//
// An Error's RetryAfter is the first of: retry-after-ms, retry-after (seconds
// or HTTP-date), the x-ratelimit-reset-* of the bucket whose remaining is 0
// (the longer if both are), a "try again in 8m28.9s" figure in the message.
// Only the two headers are used for server, network and unknown errors.
//
// # Default policies
//
// [ComputeBackoff] waits base*2^attempt, capped, with ±10% jitter in
// [RetryDelay], and never less than the provider's retry-after (which may
// exceed the cap):
//
//	kind            base   cap
//	rate_limit      1s     60s
//	quota           5m     1h
//	server          1s     30s
//	network         1s     60s
//	unknown         2s     5m
//	invalid, auth   1s     1m   (permanent: normally never retried)
//
// Note that asynq does not count a retry when IsFailure is false, so a task
// that keeps hitting rate limits stays at attempt 0; its delay then comes
// from the provider's retry-after rather than from exponential growth.
package backoff
