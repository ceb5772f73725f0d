// Package backoff turns a failed provider call into a decision: what kind of
// failure it was, whether retrying can help, and how long to wait first.
//
// The worker's handler passes the provider error, with what the call path
// saw of the answer (status, headers, raw body, the stream event that ended
// a stream), to [ClassifyCall], which returns an [*Error]; the handler
// returns that error to asynq. [Classify] does the same from the error alone
// (openai-go's *openai.Error carries status and headers). A handler that
// only needs to wait (quota headroom, a paused account) returns a [*Deferral]
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
//	resp, err := client.Call(ctx, req, nil)
//	if err != nil {
//		e := backoff.ClassifyCall(err, resp.Seen(), clk.Now())
//		if e.Permanent {
//			return fmt.Errorf("%w: %w", e, asynq.SkipRetry)
//		}
//		return e
//	}
//
// # Kinds
//
// The kind comes from the HTTP status and the provider's code or type, never
// from message text. An error event inside a stream (HTTP 200) is classified
// from its code as the same refusal over HTTP; an unknown one is network.
// A body that is not OpenAI's error object (text, HTML, {"error":"..."})
// is classified by status and headers.
//
//	kind        when                                               permanent  counts as failure
//	rate_limit  429 (any code but the quota ones), slow_down        no         no
//	quota       insufficient_quota, billing*, spend-limit codes     no         no
//	            (any 4xx), 402
//	server      5xx, 529, codes overloaded/server_error, 409       no         yes
//	network     transport errors, 408, cut stream, unknown stream   no         yes
//	            error event, context deadline or cancellation
//	invalid     400, 404, 413, 422 and other 4xx                    yes        yes
//	auth        401                                                 yes        yes
//	forbidden   403 (Error.AccountWide for region blocks)           yes        yes
//	unknown     anything else                                       no         yes
//
// # Retry-after
//
// For a rate limit, an Error's RetryAfter is the most precise wait given:
// retry-after-ms; else a "try again in 51ms" (or Azure's "retry after 7
// seconds") in the message, unless it is longer than retry-after; else
// retry-after (seconds or HTTP-date; providers round it up to whole
// seconds) capped by the x-ratelimit-reset-* of the bucket whose remaining
// is 0 (the time until that bucket is full, so a request fits no later);
// else that reset. A zero or unreadable value never hides a valid one. A
// quota error has none: bucket resets and retry-after describe the rate
// limiter, not billing. Server, network and unknown errors use
// retry-after-ms, then retry-after.
//
// # Default policies
//
// [Policy.Delay] waits base*2^attempt, capped, with ±10% jitter in
// [RetryDelay], and never less than the provider's retry-after (which may
// exceed the cap):
//
//	kind            base   cap
//	rate_limit      1s     60s
//	quota           30s    1h   (the worker's pause decides: it sets
//	                              RetryAfter to the pause's end)
//	server          1s     30s
//	network         1s     60s
//	unknown         2s     5m
//	invalid, auth,  1s     1m   (permanent: normally never retried)
//	forbidden
//
// Note that asynq does not count a retry when IsFailure is false, so a task
// that keeps hitting rate limits stays at attempt 0; its delay then comes
// from the provider's retry-after rather than from exponential growth.
package backoff
