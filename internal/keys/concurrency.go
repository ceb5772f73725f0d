package keys

// Concurrency is the hash holding an account's adaptive concurrency limit and
// the controller's state (limit, last increase and decrease, latency and hold
// baselines). See quota.Concurrency.
func Concurrency(acct string) string { return tag(acct) + "conc" }

// Permits is the sorted set of concurrency permits held (member = permit id,
// score = lease expiry in ms).
func Permits(acct string) string { return tag(acct) + "conc:permits" }
