package keys

// asynq's own keys. promptq never writes them through its own code (asynq's
// API does), but tests and cleanup find or remove them directly. The layout
// is that of asynq's internal/base package (v0.26), which asynq does not
// export: every key of a queue carries the queue's hash tag.

// AsynqQueues is asynq's set of every queue name.
func AsynqQueues() string { return "asynq:queues" }

// AsynqQueuePattern is the SCAN pattern that matches every key of an asynq
// queue (its lists, sets, task hashes and counters). Queue names accepted by
// promptq hold no glob characters.
func AsynqQueuePattern(queue string) string { return "asynq:{" + queue + "}:*" }

// AsynqLease is the sorted set of an asynq queue's active tasks (member =
// task id, score = lease expiry in Unix seconds).
func AsynqLease(queue string) string { return "asynq:{" + queue + "}:lease" }
