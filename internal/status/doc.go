// Package status builds the operator's status report of promptq: asynq queue
// counts, the pause state and the quota headroom of every account, and each
// account pool's members with their state and share of today's traffic. It
// is what `promptq status --json` prints and what GET /v1/status of
// `promptq serve` returns, so both stay identical.
//
//	insp := asynq.NewInspector(redisConnOpt)
//	rep, err := status.Collect(ctx, rdb, insp, []string{"acct-1"})
//	if err != nil { ... }
//	json.NewEncoder(os.Stdout).Encode(rep)
package status
