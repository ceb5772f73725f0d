// Package pausegate is promptq's cluster-wide pause switch. When the provider
// tells one worker to stop (429 with a long retry-after, quota exhausted, bad
// key), that worker calls Pause and no worker anywhere starts another request
// for the account until the resume time; then all resume on their own.
//
// The pause lives in one Redis hash per account, keys.Pause(acct):
//
//	until   resume time in ms since the epoch; "0" = indefinite (manual only)
//	reason  free text, e.g. the provider's message
//	kind    a Kind: "quota", "auth", "rate_limit", "daily", "manual", ...
//	set_by  host:pid of the worker, or "admin"
//	set_at  ms since the epoch
//
// A pause is active while the hash exists and until == 0 or until > now; the
// quota limiter's reserve script reads the same field with the same rule.
// Pauses only ever extend (lua/pause.lua): the later until wins and an
// indefinite pause beats any finite one. Only Resume ends a pause early.
//
// Three layers enforce a pause, from fastest to most robust:
//   - pub/sub: Pause publishes on keys.Events(acct); every gate's Run updates
//     its in-memory view (Local) and wakes Notify waiters at once;
//   - asynq: pauses longer than Config.ShortPause also pause the account's
//     asynq queues (Register lists them), so idle workers stop dequeuing;
//   - Tick, every Config.CheckInterval: covers missed messages, re-pauses
//     queues a crashed worker left running and, once the pause has expired,
//     lets exactly one gate clear the record (compare-and-clear on until,
//     lua/clear.lua + lua/done.lua) and unpause the queues.
//
// Usage in a worker:
//
//	gate, err := pausegate.New(rdb, pausegate.Config{Logger: log, Queues: asynq.NewInspector(opt)})
//	if err != nil { return err }
//	if err := gate.Register(ctx, acct, []string{queue}); err != nil { return err }
//	go gate.Run(ctx, acct) // pub/sub + periodic Tick until ctx is done
//
//	// in the handler, before calling the provider:
//	if rec, paused := gate.Local(acct); paused {
//		return retryAt(rec.Until) // give the task back, not a failure
//	}
//	// after a 429 or quota error:
//	gate.Pause(ctx, acct, pausegate.PauseRequest{Until: resetAt, Kind: pausegate.KindQuota, Reason: msg})
//
// An admin resumes with Resume(ctx, acct) or ResumeAll(ctx).
package pausegate
