package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// TypePrompt is the asynq task type of a prompt task.
const TypePrompt = "promptq:prompt"

// RetentionDefault is how long a finished task's result is kept.
const RetentionDefault = 24 * time.Hour

// MaxRetryDefault is how many real failures a task may have before it is
// archived. Waits for quota or a pause do not count.
const MaxRetryDefault = 10

// Options tunes how tasks are enqueued.
type Options struct {
	Retention time.Duration // how long results are kept (default RetentionDefault)
	MaxRetry  int           // real failures before archiving (0 = MaxRetryDefault, negative = none)
	Timeout   time.Duration // per-attempt timeout (default 0: asynq's 30m)
}

// NewPromptTask validates p and returns the asynq task for it. A non-empty
// p.ID becomes the TaskID so that the same id is enqueued once. The task's
// payload carries the time of the call as EnqueuedAt (p is not changed).
func NewPromptTask(p *Payload, o Options) (*asynq.Task, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	stamped := *p
	now := time.Now().UTC()
	stamped.EnqueuedAt = &now
	data, err := json.Marshal(&stamped)
	if err != nil {
		return nil, fmt.Errorf("tasks: encode payload: %w", err)
	}
	if len(data) > MaxPayloadBytesDefault {
		return nil, &FieldError{"payload", fmt.Sprintf("is %d bytes, the limit is %d", len(data), MaxPayloadBytesDefault)}
	}
	if o.Retention <= 0 {
		o.Retention = RetentionDefault
	}
	switch {
	case o.MaxRetry == 0:
		o.MaxRetry = MaxRetryDefault
	case o.MaxRetry < 0:
		o.MaxRetry = 0
	}
	opts := []asynq.Option{asynq.Queue(p.QueueName()), asynq.Retention(o.Retention), asynq.MaxRetry(o.MaxRetry)}
	if p.ID != "" {
		opts = append(opts, asynq.TaskID(p.ID))
	}
	if o.Timeout > 0 {
		opts = append(opts, asynq.Timeout(o.Timeout))
	}
	return asynq.NewTask(TypePrompt, data, opts...), nil
}

// Enqueuer puts prompt tasks into asynq. It is what another Go service uses
// to produce work. It is safe for concurrent use.
type Enqueuer struct {
	Client *asynq.Client // connection to the Redis the workers consume (required)
	Opts   Options       // retention, retries and timeout of every task (zero: defaults)
}

// Outcome says where one Enqueue put its task: the id and queue to pass to
// GetResult or Wait.
type Outcome struct {
	TaskID    string // the payload's ID, or the id asynq generated when it has none
	Queue     string // the queue the task is on
	Duplicate bool   // a task with this id already exists; nothing was added
}

// Enqueue validates and enqueues p. A duplicate id is not an error: the
// outcome says Duplicate.
func (e *Enqueuer) Enqueue(ctx context.Context, p *Payload) (Outcome, error) {
	t, err := NewPromptTask(p, e.Opts)
	if err != nil {
		return Outcome{}, err
	}
	info, err := e.Client.EnqueueContext(ctx, t)
	switch {
	case errors.Is(err, asynq.ErrTaskIDConflict) || errors.Is(err, asynq.ErrDuplicateTask):
		return Outcome{TaskID: p.ID, Queue: p.QueueName(), Duplicate: true}, nil
	case err != nil:
		return Outcome{}, err
	}
	return Outcome{TaskID: info.ID, Queue: info.Queue}, nil
}
