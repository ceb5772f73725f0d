package tasks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/promptq/promptq/internal/testutil"
	"github.com/promptq/promptq/tasks"
)

// env is one test's queue on the test Redis, with an Enqueuer and an
// Inspector on it.
type env struct {
	r     *testutil.Redis
	queue string
	enq   *tasks.Enqueuer
	insp  *asynq.Inspector
}

// setup gives t a queue of its own (removed when t ends), so tests run in
// parallel on one Redis without seeing each other's tasks.
func setup(t *testing.T) *env {
	t.Helper()
	r := testutil.NewRedis(t)
	e := &env{
		r:     r,
		queue: "q-" + testutil.Name(t),
		enq:   &tasks.Enqueuer{Client: asynq.NewClientFromRedisClient(r.Client)},
		insp:  asynq.NewInspectorFromRedisClient(r.Client),
	}
	t.Cleanup(func() { testutil.DeleteAsynqQueue(t, r.Client, e.queue) })
	return e
}

// payload is a valid payload on the test's queue; text is its input.
func (e *env) payload(id, text string) *tasks.Payload {
	return &tasks.Payload{
		ID: id, Model: "m-test", Input: tasks.Input{Text: text}, Queue: e.queue,
		Metadata: map[string]any{"source": "test"},
	}
}

// enqueue enqueues payloads and fails t on any error.
func (e *env) enqueue(t *testing.T, ps ...*tasks.Payload) {
	t.Helper()
	for _, p := range ps {
		if _, err := e.enq.Enqueue(context.Background(), p); err != nil {
			t.Fatalf("enqueue %q: %v", p.ID, err)
		}
	}
}

// Inputs the stand-in worker of startWorker understands.
const (
	inputOK      = "ok"      // completes with a result
	inputInvalid = "invalid" // writes a failure result, then is archived
	inputBoom    = "boom"    // is archived with an error and no result
)

// startWorker runs an asynq server on the test's queue whose handler acts
// like promptq's worker on the inputs above, and stops it when t ends.
func (e *env) startWorker(t *testing.T) {
	t.Helper()
	opt, err := asynq.ParseRedisURI(e.r.URL)
	if err != nil {
		t.Fatal(err)
	}
	srv := asynq.NewServer(opt, asynq.Config{
		Queues: map[string]int{e.queue: 1}, Concurrency: 2,
		TaskCheckInterval: 20 * time.Millisecond, LogLevel: asynq.FatalLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(tasks.TypePrompt, func(ctx context.Context, task *asynq.Task) error {
		p, err := tasks.ParsePayload(task.Payload(), 0)
		if err != nil {
			return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
		}
		var r tasks.Result
		switch p.Input.Text {
		case inputOK:
			r = tasks.Result{OutputText: "answer to " + p.ID, Usage: tasks.Usage{InputTokens: 3, OutputTokens: 2, TotalTokens: 5}}
		case inputInvalid:
			r = tasks.Result{Error: "rejected " + p.ID, ErrorKind: "invalid", Attempts: 1}
		default:
			return fmt.Errorf("boom %s: %w", p.ID, asynq.SkipRetry)
		}
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if _, err := task.ResultWriter().Write(b); err != nil {
			return err
		}
		if r.Error != "" {
			return fmt.Errorf("%s: %w", r.Error, asynq.SkipRetry)
		}
		return nil
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
}

// waitFinished waits until every task of ids is completed or archived,
// reading asynq directly (not through the functions under test).
func (e *env) waitFinished(t *testing.T, ids ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for _, id := range ids {
		for {
			info, err := e.insp.GetTaskInfo(e.queue, id)
			if err != nil {
				t.Fatalf("task %s: %v", id, err)
			}
			if info.State == asynq.TaskStateCompleted || info.State == asynq.TaskStateArchived {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("task %s did not finish: %+v", id, info)
			}
			<-tick.C
		}
	}
}
