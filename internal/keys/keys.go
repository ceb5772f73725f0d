// Package keys builds every Redis key promptq writes. All keys of one account
// share the hash tag {acct}, so a Lua script that touches several of them runs
// unchanged on Redis Cluster. It also names the asynq keys promptq reaches
// past asynq's API (asynq.go). Nothing else in promptq formats a key by hand.
package keys

import (
	"fmt"
	"regexp"
)

// Prefix starts every promptq key.
const Prefix = "promptq:"

var accountRE = regexp.MustCompile(`^[A-Za-z0-9_.\-]{1,64}$`)

// ValidateAccount reports whether name can be used as an account name: 1 to 64
// characters from [A-Za-z0-9_.-] (no braces, so the hash tag stays intact).
func ValidateAccount(name string) error {
	if !accountRE.MatchString(name) {
		return fmt.Errorf("account %q: must be 1-64 characters of A-Z a-z 0-9 _ . -", name)
	}
	return nil
}

func tag(acct string) string { return Prefix + "{" + acct + "}:" }

// AccountPattern is the SCAN pattern that matches every key of an account
// (ValidateAccount keeps glob characters out of account names).
func AccountPattern(acct string) string { return tag(acct) + "*" }

// Limits is the hash of learned limits and bucket levels of an account.
func Limits(acct string) string { return tag(acct) + "limits" }

// Inflight is the sorted set of reservations in flight (member = reservation
// id, score = expiry in ms).
func Inflight(acct string) string { return tag(acct) + "inflight" }

// Day is the hash of daily counters for date (YYYY-MM-DD in the budget's zone).
func Day(acct, date string) string { return tag(acct) + "day:" + date }

// Pause is the hash holding the account's pause record.
func Pause(acct string) string { return tag(acct) + "pause" }

// Events is the pub/sub channel on which pause and resume are announced.
func Events(acct string) string { return tag(acct) + "events" }

// Queues is the set of asynq queue names consumed by the account's workers.
func Queues(acct string) string { return tag(acct) + "queues" }

// Stats is the hash of counters kept for status and metrics (429s, estimate error).
func Stats(acct string) string { return tag(acct) + "stats" }

// Accounts is the set of every account that has run a worker. It is read by
// admin commands only, never by a script, so it needs no hash tag.
func Accounts() string { return Prefix + "accounts" }

// Calib is the hash of an account's cost calibration: what the provider
// charges per request, learned from its headers and usage.
func Calib(acct string) string { return tag(acct) + "calib" }

// Sent is the sorted set of requests sent recently (member =
// id:chars:tokens:max_output, score = send time in ms), which the
// calibration matches against the provider's remaining figures.
func Sent(acct string) string { return tag(acct) + "sent" }

// Pools is the set of the pools workers have run with (promptq worker
// --pool), read by admin commands only.
func Pools() string { return Prefix + "pools" }

// Pool is the hash of a pool's accounts: account -> tier, written by its
// workers at start, read by admin commands (shares of the pool's traffic).
func Pool(name string) string { return Prefix + "pool:" + name }

// PauseModels is the hash of an account's pauses for one model alone
// (model_not_found in a pool): model -> until in ms epoch (0 = indefinite).
func PauseModels(acct string) string { return tag(acct) + "pause:models" }

// Answer is the idempotency record of one task of the account: a claim
// ("claim:<owner>", expiring when the claimed call can no longer finish)
// while the provider is being called, then the stored answer (the result's
// JSON) for as long as results are kept.
func Answer(acct, taskID string) string { return tag(acct) + "answer:" + taskID }

// Alive is the liveness key of one worker process of the account, refreshed
// while the process runs; a claim whose owner is not alive can be taken over.
func Alive(acct, proc string) string { return tag(acct) + "alive:" + proc }

// Suspect records (server time, ms) when a worker process of the account
// was first seen not alive by a worker waiting for one of its claims.
func Suspect(acct, proc string) string { return tag(acct) + "suspect:" + proc }

// GateQueues is the hash of the asynq queues the pause gate paused for the
// account (field = queue, value "0" while the gate is pausing it, "1" once
// paused). The gate unpauses only these, so a queue an operator paused stays
// paused.
func GateQueues(acct string) string { return tag(acct) + "gate:queues" }

// Consumers is the sorted set of the account's running pause gates (member =
// gate identity, score = when its liveness lapses, in ms): an account with a
// live member consumes its queues now.
func Consumers(acct string) string { return tag(acct) + "consumers" }
