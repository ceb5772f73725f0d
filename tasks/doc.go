// Package tasks is promptq's producer contract: what another service imports
// to enqueue prompt tasks and read their results. It holds the payload
// (Payload, its validation and JSON form), the asynq task built from it
// (TypePrompt, NewPromptTask), the Enqueuer, and the readers of results
// (GetResult, Wait, ListResults). It depends on asynq and the standard
// library only, nothing else of promptq; promptq workers (`promptq worker`)
// consume the queues, call the provider and write the results.
//
// # Enqueue
//
// An Enqueuer validates a Payload and puts it on its queue (Payload.Queue,
// default DefaultQueue). A Payload.ID is an idempotency key: it becomes the
// asynq task id, so enqueuing the same id again while the task is retained
// adds nothing and reports Outcome.Duplicate instead of an error. An invalid
// payload is a *FieldError naming the field. Enqueuer.Opts (Options) sets
// how long results are kept, how many real failures a task may have (waits
// for quota or a pause do not count) and a per-attempt timeout. Payloads read
// from JSON (a JSONL line, a request body) go through ParsePayload, which
// also rejects unknown fields.
//
//	client := asynq.NewClient(asynq.RedisClientOpt{Addr: "localhost:6379"})
//	defer client.Close()
//	enq := &tasks.Enqueuer{Client: client}
//	out, err := enq.Enqueue(ctx, &tasks.Payload{
//		ID:    "doc-42",
//		Model: "gpt-4o-mini",
//		Input: tasks.Input{Text: "Summarise: ..."},
//	})
//
// # Results
//
// A worker stores each finished task's Result with asynq, where it is kept
// for Options.Retention (default RetentionDefault). GetResult reads one
// task by id and returns ErrNotFinished while it is still queued or running;
// Wait polls until it is finished; ListResults walks every finished task of
// a queue, completed ones first, then archived (failed for good) ones.
//
//	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: "localhost:6379"})
//	defer insp.Close()
//	res, err := tasks.Wait(ctx, insp, out.Queue, out.TaskID, time.Second)
//	if err == nil && res.Status == tasks.StatusCompleted {
//		fmt.Println(res.OutputText)
//	}
//
// A Result with Status StatusArchived carries the failure in Error and
// ErrorKind. The package's example runs the whole round trip, with a
// stand-in worker, against an in-memory Redis.
package tasks
