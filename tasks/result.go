package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/hibiken/asynq"
)

// Usage is the token usage the provider reported for a task.
type Usage struct {
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
	TotalTokens  int64 `json:"total_tokens"`
}

// Result is one finished task as `promptq results` prints it. The worker
// stores it with asynq's ResultWriter; Status, Queue and TaskID are filled in
// when it is read back.
type Result struct {
	ID         string         `json:"id"`
	TaskID     string         `json:"task_id"`
	Queue      string         `json:"queue"`
	Status     string         `json:"status"` // "completed" or "archived"
	OutputText string         `json:"output_text"`
	Usage      Usage          `json:"usage"`
	Error      string         `json:"error"`
	ErrorKind  string         `json:"error_kind,omitempty"`
	Attempts   int            `json:"attempts"`
	Model      string         `json:"model,omitempty"`
	Endpoint   string         `json:"endpoint,omitempty"`
	ResponseID string         `json:"response_id,omitempty"`
	Metadata   map[string]any `json:"metadata,omitempty"`
	StartedAt  *time.Time     `json:"started_at,omitempty"`
	FinishedAt *time.Time     `json:"finished_at,omitempty"`
	// Account is the provider account that served the task (or refused it
	// last): one of a pool's accounts, or the worker's --account.
	Account string `json:"account,omitempty"`
}

// Task states as results report them.
const (
	StatusCompleted = "completed"
	StatusArchived  = "archived"
)

// ResultFromInfo builds the Result of a finished (completed or archived)
// task from asynq's view of it.
func ResultFromInfo(info *asynq.TaskInfo) Result {
	var r Result
	if len(info.Result) > 0 {
		_ = json.Unmarshal(info.Result, &r) // a foreign result stays empty
	}
	var p Payload
	if json.Unmarshal(info.Payload, &p) == nil {
		if r.ID == "" {
			r.ID = p.ID
		}
		if r.Metadata == nil {
			r.Metadata = p.Metadata
		}
		if r.Model == "" {
			r.Model = p.Model
		}
	}
	if r.ID == "" {
		r.ID = info.ID
	}
	r.TaskID = info.ID
	r.Queue = info.Queue
	switch info.State {
	case asynq.TaskStateArchived:
		r.Status = StatusArchived
		if r.Error == "" {
			r.Error = info.LastErr
		}
		if r.Attempts == 0 {
			r.Attempts = info.Retried + 1
		}
	case asynq.TaskStateCompleted:
		r.Status = StatusCompleted
		r.Error = ""
	default:
		r.Status = info.State.String()
	}
	if r.Attempts == 0 {
		r.Attempts = info.Retried + 1
	}
	return r
}

// ListResults calls fn for every finished task of queue: completed ones
// first, then archived ones.
func ListResults(ctx context.Context, insp *asynq.Inspector, queue string, fn func(Result) error) error {
	list := []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){insp.ListCompletedTasks, insp.ListArchivedTasks}
	for _, l := range list {
		for page := 1; ; page++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			infos, err := l(queue, asynq.PageSize(500), asynq.Page(page))
			if errors.Is(err, asynq.ErrQueueNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			for _, info := range infos {
				if err := fn(ResultFromInfo(info)); err != nil {
					return err
				}
			}
			if len(infos) < 500 {
				break
			}
		}
	}
	return nil
}

// ErrNotFinished is returned by GetResult for a task that is still queued or running.
var ErrNotFinished = errors.New("tasks: task not finished")

// GetResult returns the result of one task by id (the idempotency id or the
// asynq task id). It returns ErrNotFinished, with the task's state in the
// Result, while the task is still pending, scheduled, retrying or active.
func GetResult(ctx context.Context, insp *asynq.Inspector, queue, id string) (Result, error) {
	info, err := insp.GetTaskInfo(queue, id)
	if err != nil {
		return Result{}, err
	}
	r := ResultFromInfo(info)
	if info.State != asynq.TaskStateCompleted && info.State != asynq.TaskStateArchived {
		return r, ErrNotFinished
	}
	return r, nil
}

// Wait polls every poll interval (default 500ms) until the task is finished
// and returns its result, or returns ctx's error.
func Wait(ctx context.Context, insp *asynq.Inspector, queue, id string, poll time.Duration) (Result, error) {
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		r, err := GetResult(ctx, insp, queue, id)
		if !errors.Is(err, ErrNotFinished) {
			return r, err
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-t.C:
		}
	}
}
