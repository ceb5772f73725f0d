package keys

// asynq's own keys. promptq never writes them through its own code (asynq's
// API does), but tests and cleanup find or remove them directly, and the
// bench counts finished tasks in them (internal/bench watch.go says why). The layout
// is that of asynq's internal/base package (v0.26), which asynq does not
// export: every key of a queue carries the queue's hash tag.

// AsynqPrefix starts every asynq key.
const AsynqPrefix = "asynq:"

// asynqTag starts every key of an asynq queue.
func asynqTag(queue string) string { return AsynqPrefix + "{" + queue + "}:" }

// AsynqQueues is asynq's set of every queue name.
func AsynqQueues() string { return AsynqPrefix + "queues" }

// AsynqQueuePattern is the SCAN pattern that matches every key of an asynq
// queue (its lists, sets, task hashes and counters). Queue names accepted by
// promptq hold no glob characters.
func AsynqQueuePattern(queue string) string { return asynqTag(queue) + "*" }

// AsynqCompleted is the sorted set of an asynq queue's completed tasks
// (kept for their retention; score = when they expire, Unix seconds).
func AsynqCompleted(queue string) string { return asynqTag(queue) + "completed" }

// AsynqArchived is the sorted set of an asynq queue's archived tasks (dead:
// retries exhausted or skipped; score = when archived, Unix seconds).
func AsynqArchived(queue string) string { return asynqTag(queue) + "archived" }

// AsynqLease is the sorted set of an asynq queue's active tasks (member =
// task id, score = lease expiry in Unix seconds).
func AsynqLease(queue string) string { return asynqTag(queue) + "lease" }
