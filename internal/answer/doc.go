// Package answer keeps paid answers: once the provider has answered a task,
// the answer is the most expensive thing in the system, and it must neither
// be lost nor bought a second time.
//
// A Store holds each task's idempotency record under its account's keys
// (keys.Answer): a claim while one attempt calls the provider, then the
// answer itself for as long as results are kept. A Spool holds answers that
// are not yet in Redis, in memory and in a local directory, so they survive
// Redis outages and a worker restart.
//
//	st := answer.NewStore(rdb, answer.Config{Account: "acct"})
//	sp, _ := answer.OpenSpool("/var/lib/promptq/spool/acct", st, log)
//	sp.FlushAll(ctx) // before taking tasks
//	go sp.Run(ctx)
//
//	c, _ := st.Claim(ctx, taskID, owner)
//	switch c.State {
//	case answer.Done:    // write c.Answer as the result, do not call
//	case answer.Claimed: // wait c.Remaining: another call may still finish
//	case answer.Mine:    // call; then sp.Add, st.Put (retried), sp.Done
//	}
package answer
